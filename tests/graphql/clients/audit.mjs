// graphql-http's own audits of a GraphQL-over-HTTP server: prints one JSON line per audit.
import { auditServer } from "graphql-http";

const [url, token] = process.argv.slice(2);
const headers = token ? { authorization: `Bearer ${token}` } : {};
const results = await auditServer({
  url,
  fetchFn: (input, init = {}) =>
    fetch(input, { ...init, headers: { ...Object.fromEntries(new Headers(init.headers)), ...headers } }),
});
for (const result of results) {
  const line = { id: result.id, name: result.name, status: result.status };
  if (result.status !== "ok") line.reason = result.reason;
  console.log(JSON.stringify(line));
}
