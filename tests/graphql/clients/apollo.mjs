// Apollo Client 4 against the gateway: HttpLink with a normalized cache, error handling,
// PersistedQueryLink and apollo-upload-client. One JSON line per case.
// Usage: node apollo.mjs <graphql-url> <writer-token> <reader-token>
import { createHash } from "node:crypto";
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache, ServerError, gql } from "@apollo/client";
import { PersistedQueryLink } from "@apollo/client/link/persisted-queries";
import { GraphQL17Alpha9Handler } from "@apollo/client/incremental";
import UploadHttpLink from "apollo-upload-client/UploadHttpLink.mjs";

const [uri, token, readerToken] = process.argv.slice(2);
const auth = token ? { authorization: `Bearer ${token}` } : {};
const report = (name, outcome) => console.log(JSON.stringify({ case: name, ...outcome }));

// Every request the client sends, as the gateway saw it asked.
const sent = [];
const recordingFetch = async (input, init) => {
  const url = new URL(typeof input === "string" ? input : input.url);
  sent.push({ method: init?.method ?? "GET", body: typeof init?.body === "string" ? JSON.parse(init.body) : null, extensions: url.searchParams.get("extensions") });
  return fetch(input, init);
};

function client(link) {
  return new ApolloClient({ link, cache: new InMemoryCache() });
}

function describe(error) {
  if (CombinedGraphQLErrors.is(error)) return { kind: "graphql", codes: error.errors.map((e) => e.extensions?.code) };
  if (ServerError.is(error)) return { kind: "server", status: error.statusCode };
  return { kind: "other", message: String(error) };
}

const NESTED = gql`
  query Nested { bootResources { id name sets { id version files { id filename } } } }
`;

// 1. HttpLink and a normalized cache: sets and files are kept under their own ids.
{
  const apollo = client(new HttpLink({ uri, headers: auth, fetch: recordingFetch }));
  const { data } = await apollo.query({ query: NESTED });
  const keys = Object.keys(apollo.cache.extract());
  report("http-link", {
    resources: data.bootResources.length,
    sets: keys.filter((k) => k.startsWith("BootResourceSet:")).length,
    files: keys.filter((k) => k.startsWith("BootResourceFile:")).length,
    expectedSets: data.bootResources.reduce((n, r) => n + r.sets.length, 0),
    expectedFiles: data.bootResources.reduce((n, r) => n + r.sets.reduce((m, s) => m + s.files.length, 0), 0),
  });
}

// 2. Errors: a refused credential and a bad document are GraphQL errors with their codes.
{
  const anonymous = client(new HttpLink({ uri, fetch: recordingFetch }));
  const refused = await anonymous.query({ query: NESTED, errorPolicy: "none" }).catch((e) => ({ error: e }));
  report("unauthenticated", describe(refused.error));
  const apollo = client(new HttpLink({ uri, headers: auth, fetch: recordingFetch }));
  const invalid = await apollo.query({ query: gql`query Bad { noSuchField }` }).catch((e) => ({ error: e }));
  report("validation", describe(invalid.error));
  const reader = client(new HttpLink({ uri, headers: { authorization: `Bearer ${readerToken}` } }));
  const forbidden = await reader.mutate({ mutation: gql`mutation { startImport { importing } }` }).catch((e) => ({ error: e }));
  report("forbidden", describe(forbidden.error));
}

// 3. PersistedQueryLink: an unknown hash is answered with PERSISTED_QUERY_NOT_FOUND, the link
// sends the text once, and later clients (GET, CDN-style) send the hash alone.
{
  const sha256 = (text) => createHash("sha256").update(text).digest("hex");
  const QUERY = gql`query Persisted { bootSources { id url selections { id release } } }`;
  const rounds = [];
  for (const useGETForHashedQueries of [false, true, true]) {
    sent.length = 0;
    const link = ApolloLink.from([
      new PersistedQueryLink({ sha256, useGETForHashedQueries }),
      new HttpLink({ uri, headers: auth, fetch: recordingFetch }),
    ]);
    const { data } = await client(link).query({ query: QUERY });
    rounds.push({
      sources: data.bootSources.length,
      requests: sent.map((r) => ({ method: r.method, withText: Boolean(r.body?.query) })),
    });
  }
  report("persisted-queries", { rounds });
}

// 4. apollo-upload-client: a multipart upload of a custom image.
{
  const link = new UploadHttpLink({ uri, headers: { ...auth, "apollo-require-preflight": "true" } });
  const content = new Uint8Array(4096).map((_, i) => i % 251);
  const file = new File([content], "root.tgz", { type: "application/gzip" });
  const { data } = await client(link).mutate({
    mutation: gql`mutation Upload($file: Upload!, $input: UploadBootResourceInput!) {
      uploadBootResource(file: $file, input: $input) {
        bootResource { id name sets { files { size sha256 complete } } }
        errors { code message }
      }
    }`,
    variables: { file, input: { name: "custom/apollo", architecture: "amd64/generic" } },
  });
  const payload = data.uploadBootResource;
  report("upload", {
    errors: payload.errors,
    name: payload.bootResource?.name,
    file: payload.bootResource?.sets[0]?.files[0],
    sha256: createHash("sha256").update(content).digest("hex"),
  });
}

// 5. @defer over multipart/mixed: the list first, then each resource's sets as they come.
{
  const apollo = new ApolloClient({
    link: new HttpLink({ uri, headers: auth }),
    cache: new InMemoryCache(),
    incrementalHandler: new GraphQL17Alpha9Handler(),
  });
  const DEFERRED = gql`
    query Deferred { bootResources { id name ... @defer { sets { id version } } } }
  `;
  const emissions = await new Promise((resolve, reject) => {
    const seen = [];
    const subscription = apollo.watchQuery({ query: DEFERRED }).subscribe({
      next: (result) => {
        if (result.error) return reject(result.error);
        if (!result.data) return;
        const resources = result.data.bootResources;
        seen.push({
          resources: resources.length,
          withSets: resources.filter((r) => Array.isArray(r.sets)).length,
          complete: result.dataState === "complete",
        });
        if (result.dataState === "complete") {
          subscription.unsubscribe();
          resolve(seen);
        }
      },
      error: reject,
    });
  });
  report("defer", { emissions });
}
