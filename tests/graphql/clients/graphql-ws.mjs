// The graphql-ws client (graphql-transport-ws) against the gateway, one JSON line per case.
// Usage: node graphql-ws.mjs <ws-url> [token] [reader-token]
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, token, readerToken] = process.argv.slice(2);

function connect(token) {
  let closed = null;
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: token ? { Authorization: `Bearer ${token}` } : undefined,
    on: { closed: (event) => (closed = { code: event.code, reason: event.reason }) },
  });
  return { client, closed: () => closed };
}

// Runs one operation to its end: every payload, then the error (if any) it ended with.
function run(client, payload) {
  return new Promise((resolve) => {
    const results = [];
    client.subscribe(payload, {
      next: (value) => results.push(value),
      error: (error) => resolve({ results, error: describe(error) }),
      complete: () => resolve({ results, error: null }),
    });
  });
}

function describe(error) {
  if (Array.isArray(error)) return { graphql: error.map((e) => ({ message: e.message, code: e.extensions?.code })) };
  if (error && typeof error.code === "number") return { close: error.code, reason: error.reason };
  return { other: String(error) };
}

function report(name, outcome) {
  console.log(JSON.stringify({ case: name, ...outcome }));
}

const QUERY = { query: "{ bootSources { id } }" };
const { client, closed } = connect(token);
const bad = [
  ["syntax", { query: "subscription { importProgress { " }],
  ["validation", { query: "subscription { importProgress { noSuchField } }" }],
  ["unknown-operation", { query: "subscription A { importProgress { importing } }", operationName: "Z" }],
  ["many-operations", { query: "query A { bootSources { id } } query B { bootSources { url } }" }],
];
for (const [name, payload] of bad) {
  const outcome = await run(client, payload);
  // The socket must stay open: the next operation on it still works.
  const after = await run(client, QUERY);
  report(name, { ...outcome, after: after.results.length === 1 && !after.error, closed: closed() });
}
report("query", await run(client, QUERY));
// Start an import, follow it, and stop it once it is seen running: the stream must end.
const started = await run(client, { query: "mutation { startImport { importing } }" });
const following = new Promise((resolve) => {
  const results = [];
  let stopping = false;
  client.subscribe(
    { query: "subscription { importProgress(untilImportEnds: true) { importing } }" },
    {
      next: (value) => {
        results.push(value);
        if (value.data?.importProgress?.importing && !stopping) {
          stopping = true;
          run(client, { query: "mutation { stopImport { importing } }" });
        }
      },
      error: (error) => resolve({ results, error: describe(error) }),
      complete: () => resolve({ results, error: null }),
    },
  );
});
report("until-import-ends", { started: started.results, ...(await following) });
await client.dispose();

if (readerToken) {
  const reader = connect(readerToken);
  const outcome = await run(reader.client, { query: "mutation { startImport { importing } }" });
  const after = await run(reader.client, QUERY);
  report("scope", { ...outcome, after: after.results.length === 1 && !after.error, closed: reader.closed() });
  await reader.client.dispose();
}
