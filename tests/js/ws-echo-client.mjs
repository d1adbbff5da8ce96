// A real @matrixai/ws client for strand's interop tests.
//
// Usage: node ws-echo-client.mjs <port> <mode>; reads one JSON line on stdin:
// {"ca": PEM} (the server certificate to trust).
// Modes:
//   echo3  open 3 streams, write two messages on each, close the writable,
//          read the echo; prints `ok <i>` per stream.
//   burst  50 times: open a stream, write 5 DATA messages, close at once,
//          read the echo and compare; prints `ok burst <count>`.
// Always ends with `done` (or `fail <reason>`), and exits within 60 s.
import { createInterface } from 'node:readline';
import Logger, { LogLevel } from '@matrixai/logger';
import ws from '@matrixai/ws';

const { WebSocketClient } = ws;

setTimeout(() => {
  console.log('fail timeout');
  process.exit(2);
}, 60_000).unref();

const [port, mode] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin });
const first = await new Promise((resolve) => lines.once('line', resolve));
const { ca } = JSON.parse(first);

const enc = new TextEncoder();
const dec = new TextDecoder();

async function readAll(readable) {
  const chunks = [];
  for await (const chunk of readable) chunks.push(dec.decode(chunk, { stream: true }));
  return chunks.join('');
}

async function echo(client, messages) {
  const stream = await client.connection.newStream();
  const writer = stream.writable.getWriter();
  const reading = readAll(stream.readable);
  for (const m of messages) await writer.write(enc.encode(m));
  await writer.close();
  const got = await reading;
  const want = messages.join('');
  if (got !== want) throw new Error(`echo mismatch on ${stream.streamId}: ${JSON.stringify(got)}`);
  return stream.streamId;
}

try {
  const client = await WebSocketClient.createWebSocketClient({
    host: '127.0.0.1',
    port: Number(port),
    config: { ca, verifyPeer: true },
    logger: new Logger('ws-echo-client', LogLevel.WARN),
  });
  if (mode === 'echo3') {
    const ids = await Promise.all(
      [0, 1, 2].map((i) => echo(client, [`hello-${i}`, `second message on stream ${i}`])),
    );
    ids.forEach((id, i) => console.log(`ok ${i} ${id}`));
  } else if (mode === 'burst') {
    let count = 0;
    for (let round = 0; round < 50; round++) {
      const messages = [0, 1, 2, 3, 4].map((k) => `round ${round} message ${k};`);
      await echo(client, messages);
      count++;
    }
    console.log(`ok burst ${count}`);
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  await client.destroy({ force: false });
  console.log('done');
  process.exit(0);
} catch (err) {
  console.log(`fail ${err?.message ?? err}`);
  process.exit(1);
}
