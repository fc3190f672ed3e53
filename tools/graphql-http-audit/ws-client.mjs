// The reference graphql-transport-ws client (graphql-ws) against a running big-market.
//
//   node ws-client.mjs <ws-url> <token> <userId> <messageId> <bad-token>
//
// 1. subscribes to `taskStatus(userId, messageId)` until the event is DELIVERED (or 20 s);
// 2. resumes with `after:` the cursor of the first event and collects what follows;
// 3. connects with a token that does not verify and records the close code;
// then prints one JSON object: { events, resumed, badToken: { code, reason } }.
// Exits 1 with the error when a step fails; the calling test checks the content.
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, userId, messageId, badToken] = process.argv.slice(2);
if (!badToken) {
  console.error('usage: node ws-client.mjs <ws-url> <token> <userId> <messageId> <bad-token>');
  process.exit(2);
}

const QUERY = `subscription Status($userId: String, $messageId: ID, $after: String) {
  taskStatus(userId: $userId, messageId: $messageId, after: $after) { cursor messageId state attempts }
}`;

function client(authorization, onClosed) {
  return createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${authorization}` },
    retryAttempts: 0,
    lazy: true,
    on: onClosed ? { closed: onClosed } : undefined,
  });
}

/** Collects `taskStatus` events until `done(events)` or `ms` elapse. */
function collect(c, variables, done, ms) {
  return new Promise((resolve, reject) => {
    const events = [];
    const timer = setTimeout(() => {
      stop();
      resolve(events);
    }, ms);
    const stop = c.subscribe(
      { query: QUERY, variables },
      {
        next: (r) => {
          if (r.errors) {
            clearTimeout(timer);
            reject(new Error(JSON.stringify(r.errors)));
            return;
          }
          events.push(r.data.taskStatus);
          if (done(events)) {
            clearTimeout(timer);
            stop();
            resolve(events);
          }
        },
        error: (e) => {
          clearTimeout(timer);
          reject(e instanceof Error ? e : new Error(`closed ${e?.code ?? ''} ${e?.reason ?? JSON.stringify(e)}`));
        },
        complete: () => {
          clearTimeout(timer);
          resolve(events);
        },
      },
    );
  });
}

try {
  const first = client(token);
  const events = await collect(first, { userId, messageId }, (es) => es.some((e) => e.state === 'DELIVERED'), 20000);
  await first.dispose();

  const again = client(token);
  const resumed = await collect(
    again,
    { userId, messageId, after: events[0]?.cursor },
    (es) => es.length >= events.length - 1,
    5000,
  );
  await again.dispose();

  const closed = await new Promise((resolve) => {
    const c = client(badToken, (event) => resolve({ code: event.code, reason: event.reason }));
    c.subscribe({ query: QUERY, variables: { userId } }, { next: () => {}, error: () => {}, complete: () => {} });
    setTimeout(() => resolve({ code: null, reason: 'not closed within 5 s' }), 5000);
  });

  console.log(JSON.stringify({ events, resumed, badToken: closed }));
  process.exit(0);
} catch (e) {
  console.error(e?.stack ?? String(e));
  process.exit(1);
}
