// Shows the Chromium crash that keeps the "server killed while data flows"
// browser test on the plain WebSocket path: a page that writes to a
// WebSocketStream in a loop while its server is killed loses its renderer
// ("Target crashed"). No strand client code runs in the page; the server is
// `strand serve` (STRAND_BIN), killed with SIGKILL after 1 s.
//
//   node scripts/wss-crash-repro.mjs    # prints "renderer crashed" or the page's log
import { startStrand } from '../test/support/strand.mjs';
import { launch } from '../test/support/browser.mjs';
import { serveStatic } from '../test/support/http.mjs';

const http = await serveStatic();
const browser = await launch();
const page = await browser.newPage();
let crashed = false;
page.on('crash', () => (crashed = true));
await page.goto(`${http.origin}/test/browser/page.html`);
const server = await startStrand(['--ws', '127.0.0.1:0']);
const outcome = page.evaluate(async (url) => {
  const wss = new WebSocketStream(url);
  const { readable, writable } = await wss.opened;
  const reader = readable.getReader();
  const writer = writable.getWriter();
  const log = [];
  wss.closed.catch((e) => log.push(`closed: ${e}`));
  (async () => {
    try {
      while (!(await reader.read()).done);
    } catch (e) {
      log.push(`read: ${e}`);
    }
  })();
  // Open mux stream 0 (ACK 1 MiB), then keep writing 1-byte ACKs on it.
  await writer.write(new Uint8Array([0, 0, 1, 0, 16, 0, 0]));
  let writes = 0;
  (async () => {
    for (;;) {
      try {
        await writer.write(new Uint8Array([0, 0, 1, 0, 0, 0, 1]));
        writes++;
      } catch (e) {
        log.push(`write: ${e}`);
        return;
      }
    }
  })();
  await new Promise((r) => setTimeout(r, 3000));
  log.push(`${writes} writes`);
  return log;
}, server.ws);
await new Promise((r) => setTimeout(r, 1000));
await server.kill('SIGKILL');
const log = await outcome.catch((e) => e.message);
console.log(crashed ? `renderer crashed (${log})` : log);
await browser.close();
await http.close();
process.exit(crashed ? 1 : 0);
