// subscriptions-transport-ws, the client of the legacy graphql-ws subprotocol, against the
// gateway: one JSON line per case. Usage: node legacy-ws.mjs <ws-url> [token] [wrong-token]
import subscriptions from "subscriptions-transport-ws";
import WebSocket from "ws";

const { SubscriptionClient } = subscriptions;
const [url, token, wrongToken] = process.argv.slice(2);

function connect(credential) {
  const state = { connected: false, error: null, closed: null };
  const client = new SubscriptionClient(
    url,
    {
      reconnect: false,
      connectionParams: credential ? { Authorization: `Bearer ${credential}` } : undefined,
      connectionCallback: (error) => {
        if (error) state.error = error;
        else state.connected = true;
      },
    },
    WebSocket,
  );
  client.onDisconnected(() => (state.closed = client.client?.closeCode ?? true));
  return { client, state };
}

function run(client, request) {
  return new Promise((resolve) => {
    const results = [];
    client.request(request).subscribe({
      next: (value) => results.push(value),
      error: (error) => resolve({ results, error: describe(error) }),
      complete: () => resolve({ results, error: null }),
    });
  });
}

function describe(error) {
  const errors = Array.isArray(error) ? error : [error];
  return errors.map((e) => ({ message: e?.message, code: e?.extensions?.code }));
}

const report = (name, outcome) => console.log(JSON.stringify({ case: name, ...outcome }));
const QUERY = { query: "{ bootSources { id } }" };

const { client, state } = connect(token);
report("query", await run(client, QUERY));
report("subscription", await run(client, {
  query: "subscription { importProgress(untilImportEnds: true) { importing } }",
}));
report("syntax", await run(client, { query: "{ bootSources { " }));
report("unknown-operation", await run(client, { ...QUERY, operationName: "Z" }));
report("after-errors", { ...(await run(client, QUERY)), connected: state.connected });
client.close();

if (wrongToken) {
  // A refused connection never answers its operations: the client reports it disconnected.
  const refused = connect(wrongToken);
  const disconnected = new Promise((resolve) => refused.client.onDisconnected(resolve));
  const outcome = await Promise.race([run(refused.client, QUERY), disconnected.then(() => null)]);
  report("wrong-credential", { outcome, connectionError: refused.state.error });
  refused.client.close();
}
