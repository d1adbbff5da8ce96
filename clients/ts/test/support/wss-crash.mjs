// Does this Chromium crash the renderer when a WebSocketStream's connection
// drops while the page writes to it back to back (each write awaited)?
// Chromium 156 does, every time: the page is lost ("Target crashed"). The
// repro runs no strand code: a bare `ws` server on 127.0.0.1 that reads and
// answers nothing, a page that writes 7-byte messages in a loop, and the
// server's side of the TCP connection destroyed after 500 ms. The browser
// tests run their "connection killed mid-call" cases on the WebSocketStream
// path only when this says the Chromium at hand survives it.
//
//   node test/support/wss-crash.mjs    # prints the verdict; exit 1 on a crash
import { WebSocketServer } from 'ws';
import { launch } from './browser.mjs';
import { serveStatic } from './http.mjs';

/** Runs the repro in a Chromium of its own (a crashed renderer can take
 * other pages of the same site with it). Resolves with { crashed, version,
 * detail }. */
export async function wssCrash() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise((r) => wss.once('listening', r));
  let socket;
  const connected = new Promise((r) =>
    wss.once('connection', (ws) => {
      socket = ws;
      ws.on('message', () => {});
      r();
    }),
  );
  // A page from an http origin (from about:blank the handshake fails).
  const http = await serveStatic();
  const browser = await launch();
  try {
    const version = browser.version();
    const page = await browser.newPage();
    let crashed = false;
    const crash = new Promise((r) =>
      page.on('crash', () => {
        crashed = true;
        r('renderer crashed');
      }),
    );
    await page.goto(`${http.origin}/test/browser/page.html`);
    if (!(await page.evaluate(() => typeof WebSocketStream === 'function'))) {
      return { crashed: false, version, detail: 'no WebSocketStream' };
    }
    const outcome = page.evaluate(async (url) => {
      const wss = new WebSocketStream(url);
      const { readable, writable } = await wss.opened;
      const log = [];
      wss.closed.catch((e) => log.push(`closed: ${e}`));
      const reader = readable.getReader();
      (async () => {
        try {
          while (!(await reader.read()).done);
        } catch (e) {
          log.push(`read: ${e}`);
        }
      })();
      const writer = writable.getWriter();
      let writes = 0;
      const deadline = Date.now() + 3000;
      while (Date.now() < deadline) {
        try {
          await writer.write(new Uint8Array([0, 0, 1, 0, 0, 0, 1]));
          writes++;
        } catch (e) {
          log.push(`write: ${e}`);
          break;
        }
      }
      log.push(`${writes} writes`);
      return log.join('; ');
    }, `ws://127.0.0.1:${wss.address().port}`);
    await connected;
    await new Promise((r) => setTimeout(r, 500));
    socket._socket.destroy();
    const detail = await Promise.race([outcome.catch((e) => e.message.split('\n')[0]), crash]);
    return { crashed, version, detail };
  } finally {
    await browser.close();
    await http.close();
    await new Promise((r) => wss.close(r));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { crashed, version, detail } = await wssCrash();
  console.log(`Chromium ${version}: ${crashed ? 'renderer crashed' : 'survived'} (${detail})`);
  process.exit(crashed ? 1 : 0);
}
