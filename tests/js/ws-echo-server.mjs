// A real @matrixai/ws echo server for strand's interop tests.
//
// Reads one JSON line on stdin: {"cert": PEM, "key": PEM}. Prints
// `listening <port>`, then echoes every stream (readable piped to writable)
// and prints `echoed <streamId> <bytes>` when a stream's echo completes.
// Exits by itself after 60 s or when stdin closes.
import { createInterface } from 'node:readline';
import Logger, { LogLevel } from '@matrixai/logger';
import ws from '@matrixai/ws';

const { WebSocketServer, events } = ws;

const lines = createInterface({ input: process.stdin });
const first = await new Promise((resolve) => lines.once('line', resolve));
const { cert, key } = JSON.parse(first);
lines.on('close', () => process.exit(0));
setTimeout(() => process.exit(0), 60_000).unref();

const server = new WebSocketServer({
  config: { key, cert, verifyPeer: false },
  logger: new Logger('ws-echo-server', LogLevel.WARN),
});
server.addEventListener(events.EventWebSocketServerConnection.name, (evt) => {
  const conn = evt.detail;
  conn.addEventListener(events.EventWebSocketConnectionStream.name, async (e) => {
    const stream = e.detail;
    let n = 0;
    const counter = new TransformStream({
      transform(chunk, controller) {
        n += chunk.length;
        controller.enqueue(chunk);
      },
    });
    try {
      await stream.readable.pipeThrough(counter).pipeTo(stream.writable);
      console.log(`echoed ${stream.streamId} ${n}`);
    } catch (err) {
      console.log(`error ${stream.streamId} ${err?.message ?? err}`);
    }
  });
});
await server.start({ host: '127.0.0.1', port: 0 });
console.log(`listening ${server.port}`);
