// A real @matrixai/rpc client on a strand server that drains
// (tests/conformance/tests/drain_js.rs). Prints `ok echo`, then `started`
// once its long call (`nap`) is sent; after a `drain` line on stdin:
// `ok refused <error>` for a call made during the drain, `ok nap <result>`,
// `closed <close detail>`, then `done`. Any uncaught error prints
// `fail uncaught <error>`. Exits within 60 s.
//
// usage: node rpc-drain-client.mjs <ws|quic> <port>; reads one JSON line on
// stdin first: {"ca": PEM}.
import { createInterface } from 'node:readline';
import ws from '@matrixai/ws';
import { events as quicEvents } from '@matrixai/quic';
import { exitAfter, dial, makeClient } from './rpc-common.mjs';

exitAfter(60_000);
const [carrier, port] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin });
const next = () => new Promise((resolve) => lines.once('line', resolve));
const { ca } = JSON.parse(await next());

function describe(e) {
  return JSON.stringify({
    name: e?.constructor?.name,
    code: e?.code ?? null,
    message: e?.message ?? String(e),
    data: e?.data ?? null,
  });
}

for (const event of ['uncaughtException', 'unhandledRejection']) {
  process.on(event, (e) => {
    console.log(`fail uncaught ${describe(e)}`);
    process.exit(3);
  });
}

const conn = await dial(carrier, Number(port), { ca });
const closeEvent = carrier === 'ws'
  ? ws.events.EventWebSocketConnectionClose.name
  : quicEvents.EventQUICConnectionClose.name;
const closed = new Promise((resolve) => {
  conn.connection.addEventListener(closeEvent, (e) => resolve(e.detail), { once: true });
});
const m = makeClient(conn.streamFactory, { value: null }).methods;

await m.echo({ hello: 1 });
console.log('ok echo');
const nap = m.nap({ ms: 1000 });
console.log('started');

await next(); // `drain`: the server is draining now
try {
  await m.echo({ during: 'drain' });
  console.log('ok refused none');
} catch (e) {
  console.log(`ok refused ${describe(e)}`);
}
try {
  console.log(`ok nap ${JSON.stringify(await nap)}`);
} catch (e) {
  console.log(`fail nap ${describe(e)}`);
}
console.log(`closed ${describe(await closed)}`);
console.log('done');
process.exit(0);
