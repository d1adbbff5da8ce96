// A scripted mux peer on 127.0.0.1 (the `ws` package's server): the test
// reads each frame the client sends and sends frames of its own, to check
// the client's wire behaviour rule by rule.
import { WebSocketServer } from 'ws';
import { decode, encode } from '../../dist/wire.js';

export async function fakeServer() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  const frames = [];
  let waiting = null;
  let socket;
  const connected = new Promise((resolve) => {
    wss.once('connection', (ws) => {
      socket = ws;
      ws.on('message', (data, isBinary) => {
        frames.push(isBinary ? decode(new Uint8Array(data)) : { text: data.toString() });
        waiting?.();
      });
      resolve(ws);
    });
  });
  const server = {
    url: `ws://127.0.0.1:${wss.address().port}`,
    connected,
    /** The close code the client sent, once it closed. */
    closed: connected.then((ws) => new Promise((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })))),
    /** The next frame from the client (fails after `ms`). */
    async next(ms = 5000) {
      const deadline = Date.now() + ms;
      while (!frames.length) {
        if (Date.now() > deadline) throw new Error('no frame from the client');
        await new Promise((r) => {
          waiting = r;
          setTimeout(r, 50);
        });
      }
      return frames.shift();
    },
    /** The next `n` frames. */
    async nextN(n, ms) {
      const out = [];
      while (out.length < n) out.push(await server.next(ms));
      return out;
    },
    /** Frames received so far and not yet taken. */
    pending: () => frames.splice(0),
    /** Waits `ms` and says whether nothing arrived meanwhile. */
    async quiet(ms = 200) {
      await new Promise((r) => setTimeout(r, ms));
      return frames.length === 0;
    },
    send: (...args) => socket.send(encode(...args)),
    sendRaw: (data) => socket.send(data),
    close: () => new Promise((r) => wss.close(r)),
    terminate: () => socket.terminate(),
  };
  return server;
}
