// big-market's GraphiQL page (api/assets/graphiql/index.html, served at /graphiql).
//
// Same origin only. Queries and mutations are POSTed to the HTTP endpoint; subscriptions go over
// the WebSocket endpoint with graphql-transport-ws (graphql-ws, bundled in graphiql.min.js). The
// headers editor's JSON, e.g. {"Authorization": "Bearer <token>"}, is sent both as HTTP headers
// and as the `connection_init` payload of each subscription's socket (GraphiQL's fetcher opens
// one per subscription with the headers of its tab), which is where the server reads the token.
//
// URL parameters fill the editors: `query`, `variables` and `headers` (JSON text). Query and
// variables are written back to the URL as they are edited, so the address can be shared;
// headers never are (they hold tokens), nor are they kept in the browser's storage.
(function () {
  'use strict';

  var root = document.getElementById('graphiql');
  var params = new URLSearchParams(window.location.search);
  var http = new URL(root.dataset.endpoint, window.location.href);
  var ws = new URL(root.dataset.subscriptionEndpoint, window.location.href);
  ws.protocol = window.location.protocol === 'https:' ? 'wss:' : 'ws:';

  var fetcher = GraphiQL.createFetcher({
    url: http.href,
    subscriptionUrl: ws.href,
    // The server answers single JSON responses; GraphiQL's multipart reader is not needed.
    enableIncrementalDelivery: false,
  });

  function remember(name) {
    return function (value) {
      if (value) {
        params.set(name, value);
      } else {
        params.delete(name);
      }
      var search = params.toString();
      window.history.replaceState(null, '', window.location.pathname + (search ? '?' + search : ''));
    };
  }

  var defaultQuery = [
    '# big-market GraphQL API.',
    '#',
    '# Queries and mutations go to POST ' + http.pathname + ', subscriptions to ' + ws.pathname,
    '# (graphql-transport-ws). Everything but the catalogue reads needs a bearer token: open',
    '# "Headers" below and enter {"Authorization": "Bearer <token>"} (`big-market token --admin`',
    '# or `--user <id>` prints one). Subscriptions send the same headers in connection_init.',
    '',
    '{',
    '  strategy(strategyId: 100006) {',
    '    strategyId',
    '    strategyDesc',
    '  }',
    '}',
    '',
  ].join('\n');

  var props = {
    fetcher: fetcher,
    defaultQuery: defaultQuery,
    onEditQuery: remember('query'),
    onEditVariables: remember('variables'),
    defaultEditorToolsVisibility: params.has('headers') ? 'headers' : params.has('variables'),
    shouldPersistHeaders: false,
  };
  ['query', 'variables', 'headers'].forEach(function (name) {
    if (params.has(name)) {
      props[name] = params.get(name);
    }
  });

  ReactDOM.createRoot(root).render(React.createElement(GraphiQL, props));
})();
