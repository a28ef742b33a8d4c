// graphql-sse's own client, in distinct connections mode, following one subscription.
// Usage: node sse_client.mjs URL TOKEN QUERY COUNT
// Prints one JSON line per result ({"result": ...}) and per (re)connection
// ({"connected": reconnecting}), and exits after COUNT results or on an error.
//
// The client retries a dropped connection by sending its request again; like a browser's
// EventSource it then names the last event id it saw in Last-Event-ID. graphql-sse's parser
// does not expose SSE ids, so the fetch given to it reads them off the stream on the way.
import { createClient } from 'graphql-sse';

const [url, token, query, count] = process.argv.slice(2);
let lastEventId = null;

function trackIds(body) {
  const decoder = new TextDecoder();
  let pending = '';
  return body.pipeThrough(
    new TransformStream({
      transform(chunk, controller) {
        pending += decoder.decode(chunk, { stream: true });
        const lines = pending.split('\n');
        pending = lines.pop();
        for (const line of lines) {
          if (line.startsWith('id: ')) lastEventId = line.slice(4).trim();
        }
        controller.enqueue(chunk);
      },
    }),
  );
}

const fetchFn = async (input, init) => {
  const response = await fetch(input, init);
  if (!response.body) return response;
  return new Response(trackIds(response.body), {
    status: response.status,
    statusText: response.statusText,
    headers: response.headers,
  });
};

const client = createClient({
  url,
  fetchFn,
  retryAttempts: 10,
  retry: () => new Promise((resolve) => setTimeout(resolve, 200)),
  headers: () => ({
    authorization: `Bearer ${token}`,
    ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
  }),
  on: { connected: (reconnecting) => console.log(JSON.stringify({ connected: reconnecting })) },
});

let received = 0;
try {
  for await (const result of client.iterate({ query })) {
    console.log(JSON.stringify({ result }));
    received += 1;
    if (received >= Number(count)) break;
  }
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.message ?? error) }));
  process.exitCode = 1;
}
client.dispose();
