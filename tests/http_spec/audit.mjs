// The GraphQL over HTTP specification's reference audit (graphql-http's serverAudits) against
// a running Chimera: one JSON line per audit on stdout, {id, name, status, reason}.
// Usage: node audit.mjs URL TOKEN   (every request carries the bearer token, as a client's would)
import { serverAudits } from 'graphql-http';

const [url, token] = process.argv.slice(2);
const fetchFn = (input, init = {}) => {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
};
for (const audit of serverAudits({ url, fetchFn })) {
  const result = await audit.fn();
  const line = { id: audit.id, name: audit.name, status: result.status };
  if (result.status !== 'ok') {
    line.reason = result.reason;
    if (result.response) {
      line.got = {
        status: result.response.status,
        contentType: result.response.headers.get('content-type'),
      };
    }
  }
  console.log(JSON.stringify(line));
}
