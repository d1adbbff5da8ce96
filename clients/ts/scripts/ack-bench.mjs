// How fast the client takes a server stream of small messages, and how many
// ACK frames it sends for them: `count` of the demo service (one
// `{"i":k}` message per item) from `strand serve` (STRAND_BIN) over ws on
// loopback, in Node. No assertion: it prints figures.
//
//   npm run build && STRAND_BIN=../../target/release/strand node scripts/ack-bench.mjs [items] [runs]
import WebSocket from 'ws';
import { connect } from '../dist/index.js';
import { ACK, decode } from '../dist/wire.js';
import { startStrand } from '../test/support/strand.mjs';

const items = Number(process.argv[2] ?? 200_000);
const runs = Number(process.argv[3] ?? 3);

let acks = 0;
let frames = 0;
/** The `ws` constructor, counting what the client sends. */
class Counting extends WebSocket {
  send(data, ...rest) {
    frames++;
    if (decode(data).type === ACK) acks++;
    return super.send(data, ...rest);
  }
}

const server = await startStrand(['--ws', '127.0.0.1:0']);
try {
  const client = await connect(server.ws, { WebSocket: Counting });
  for (let run = 1; run <= runs; run++) {
    acks = 0;
    frames = 0;
    const start = performance.now();
    let n = 0;
    for await (const item of client.serverStream('count', { n: items })) {
      if (item.i !== n) throw new Error(`item ${n} is ${JSON.stringify(item)}`);
      n++;
    }
    const secs = (performance.now() - start) / 1000;
    console.log(
      `run ${run}: ${n} messages in ${secs.toFixed(2)} s: ${Math.round(n / secs)} msgs/s, ${acks} ACK frames (${frames} frames sent)`,
    );
  }
  await client.close();
} finally {
  await server.kill();
}
