// Starts GraphiQL on the gateway's page; a file rather than inline so `script-src 'self'` holds.
(function () {
  "use strict";

  var container = document.getElementById("graphiql");

  // Without the vendored assets the page would say "Loading" forever; say what to do instead.
  if (!window.React || !window.ReactDOM || !window.GraphiQL || !window.GraphiQLPluginExplorer) {
    var message = document.createElement("p");
    message.className = "graphiql-boot-error";
    message.textContent =
      "GraphiQL's assets are missing from this server. Build the gateway with `make`, " +
      "which runs scripts/vendor_assets.py to fetch them from the npm registry.";
    container.replaceChildren(message);
    return;
  }

  var DEFAULT_QUERY = [
    "# maas-gateway: GraphQL over MAAS's boot-image API.",
    "#",
    "# Run a query with Ctrl-Enter or the play button; Ctrl-Space autocompletes.",
    "# The docs and explorer panes on the left describe every field.",
    "",
    "{",
    "  bootSources {",
    "    id",
    "    url",
    "  }",
    "}",
    "",
  ].join("\n");

  // The editors' contents live in the URL so a query can be shared as a link. Headers never
  // do: they may carry credentials, which must not end up in history or access logs.
  var parameters = new URLSearchParams(window.location.search);

  function updateUrl(name, value) {
    if (value) {
      parameters.set(name, value);
    } else {
      parameters.delete(name);
    }
    var search = parameters.toString();
    window.history.replaceState(null, "", search ? "?" + search : window.location.pathname);
  }

  // `q`, not `query` as in GraphiQL's examples: a GET with `query` is executed by the endpoint
  // (GraphQL over HTTP) instead of serving this page, so such a link would never reach here.
  var initialQuery = parameters.get("q") || DEFAULT_QUERY;

  var fetchUrl = window.location.origin + window.location.pathname;
  var subscriptionUrl = new URL(fetchUrl);
  subscriptionUrl.protocol = subscriptionUrl.protocol === "https:" ? "wss:" : "ws:";

  // HTTP for queries and mutations, graphql-transport-ws (opened on first use) for subscriptions.
  var fetcher = window.GraphiQL.createFetcher({
    url: fetchUrl,
    subscriptionUrl: subscriptionUrl.toString(),
  });

  var root = window.ReactDOM.createRoot(container);
  root.render(
    window.React.createElement(window.GraphiQL, {
      fetcher: fetcher,
      plugins: [window.GraphiQLPluginExplorer.explorerPlugin()],
      query: initialQuery,
      variables: parameters.get("variables") || undefined,
      onEditQuery: function (query) {
        // GraphiQL reports the initial text as an edit too; keep the plain page's link plain.
        updateUrl("q", query === DEFAULT_QUERY ? "" : query);
      },
      onEditVariables: function (variables) {
        updateUrl("variables", variables);
      },
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      inputValueDeprecation: true,
    }),
  );
})();
