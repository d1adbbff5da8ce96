// The browser tier: the minified bundle in headless Chromium against a real
// `strand serve`, over ws:// and wss:// (its self-signed certificate
// trusted by its SPKI pin, verification left on), once with WebSocketStream
// and once with it deleted before the client loads (the plain WebSocket
// path).
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startStrand, spkiHash, until } from '../support/strand.mjs';
import { serveStatic } from '../support/http.mjs';
import { launch } from '../support/browser.mjs';
import { compileGenerated, EXPECTED_ROUND_TRIP } from '../support/codegen.mjs';
import { wssCrash } from '../support/wss-crash.mjs';

let strand;
let guarded;
let http;
let browser;

before(async () => {
  strand = await startStrand(['--ws', '127.0.0.1:0', '--wss', '127.0.0.1:0'], { verbose: true });
  guarded = await startStrand(['--ws', '127.0.0.1:0', '--wss', '127.0.0.1:0', '--token', 'sesame', '--refresh-token', 'fresh']);
  http = await serveStatic();
  browser = await launch({ spki: [spkiHash(strand.certPem), spkiHash(guarded.certPem)] });
  compileGenerated();
});

after(async () => {
  await browser?.close();
  await http?.close();
  await strand?.kill();
  await guarded?.kill();
});

const cancelledSleeps = () =>
  strand.log().split('\n').filter((l) => l.includes('caller went away') && l.includes('method="sleep"')).length;

async function openPage(plain) {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(`${http.origin}/test/browser/page.html${plain ? '?plain' : ''}`);
  await page.waitForFunction(() => window.casesReady === true, null, { timeout: 20_000 });
  assert.deepEqual(errors, []);
  return page;
}

/** Why the WebSocketStream "connection killed" tests cannot run here, or
 * undefined: the minimal repro (test/support/wss-crash.mjs), run once. */
let crashVerdict;
const wssCrashReason = () =>
  (crashVerdict ??= wssCrash().then(({ crashed, version }) =>
    crashed
      ? `Chromium ${version} crashes the renderer when a WebSocketStream's connection drops during awaited writes (test/support/wss-crash.mjs reproduces it without strand; README, Known issues)`
      : undefined,
  ));

const run = (page, name, ...args) => page.evaluate(([n, a]) => window.cases[n](...a), [name, args]);

for (const plain of [false, true]) {
  const carrier = plain ? 'WebSocket' : 'WebSocketStream';
  for (const scheme of ['ws', 'wss']) {
    describe(`${scheme}:// with ${carrier}`, () => {
      let page;
      const url = () => strand[scheme];
      before(async () => {
        page = await openPage(plain);
      });
      after(() => page?.close());

      test('carrier', async () => {
        const t = await run(page, 'transport', url());
        assert.equal(t.transport, carrier);
        assert.equal(t.hasWebSocketStream, !plain);
      });
      test('generated client (strand codegen ts): every kind', async () => {
        assert.deepEqual(await run(page, 'codegen', url()), { ...EXPECTED_ROUND_TRIP, transport: scheme });
      });
      for (const name of ['unary', 'serverStream', 'clientStream', 'duplex', 'raw', 'rawPipelined', 'errors', 'timeout', 'big']) {
        test(name, async () => {
          await run(page, name, url());
        });
      }
      test('cancel reaches the handler', async () => {
        const before = cancelledSleeps();
        await run(page, 'cancel', url());
        assert.ok(await until(() => cancelledSleeps() > before), 'strand logged the sleep call cancelled');
      });
      test('auth: accepted, refreshed, rejected', async () => {
        const out = await run(page, 'auth', guarded[scheme], 'sesame');
        assert.deepEqual(out, { identity: 'demo', then: 'refreshed', refreshed: ['fresh'], wrong: -32020, none: -32020 });
      });
      test('backpressure: 64 MiB with the reader stopped, then resumed', async () => {
        const out = await run(page, 'backpressure', url());
        assert.equal(out.heldWhilePaused, out.window);
        assert.ok(out.maxBuffered <= out.window);
        // The server's side of the stream while the page did not read.
        assert.equal(out.server.in_flight, out.window);
        assert.equal(out.server.send_credit, 0);
        assert.ok(out.server.buffered <= out.server.window, JSON.stringify(out.server));
        assert.equal(out.total, 64 << 20);
      });
      // The server's end, on ws:// (each doomed server has its own
      // certificate, which the browser's SPKI list does not hold).
      if (scheme === 'ws') {
        // The server killed with calls under way: a server stream left
        // unread (nothing flowing), then one being read (data and ACKs
        // flowing). On WebSocketStream only where Chromium survives the
        // minimal repro: a Chromium that crashes the renderer when a
        // WebSocketStream's connection drops while it is written to would
        // lose the page (README, "Known issues").
        for (const busy of [false, true]) {
          test(`server killed mid-call (${busy ? 'data flowing' : 'stream idle'})`, async (t) => {
            const crash = plain ? undefined : await wssCrashReason();
            if (crash) return t.skip(crash);
            const doomed = await startStrand(['--ws', '127.0.0.1:0']);
            try {
              await run(page, 'startDoomed', doomed.ws, busy);
            } finally {
              await doomed.kill('SIGKILL');
            }
            const out = await run(page, 'doomedOutcome');
            assert.equal(out.closeCode, 1006);
            assert.equal(out.sleeping.name, 'ConnectionError');
            assert.equal(out.streaming.name, 'ConnectionError');
          });
        }
        test('server shut down mid-call', async () => {
          // A grace period the calls outlast: once it is over strand makes
          // one bounded attempt to answer the calls -32001, and resets a
          // stream if that fails (docs/protocol.md, "Call lifecycle"), then
          // closes with 1000. The sleeping call gets -32001; the stream,
          // stalled on credit (the page does not read it), may not take
          // its answer and is reset or ended by the close.
          const doomed = await startStrand(['--ws', '127.0.0.1:0', '--grace', '300']);
          try {
            await run(page, 'startDoomed', doomed.ws, false);
          } finally {
            await doomed.kill('SIGTERM');
          }
          const out = await run(page, 'doomedOutcome');
          assert.equal(out.closeCode, 1000);
          assert.deepEqual([out.sleeping.name, out.sleeping.code], ['RpcError', -32001], JSON.stringify(out.sleeping));
          assert.ok(['RpcError', 'StreamError', 'ConnectionError'].includes(out.streaming.name), JSON.stringify(out.streaming));
        });
      }
    });
  }
}

// The page `strand serve` answers GET /demo with, on its ws and wss
// listeners: every call kind from the page to the server that served it.
for (const scheme of ['ws', 'wss']) {
  test(`demo page over ${scheme === 'ws' ? 'http' : 'https'}: every row as expected`, async () => {
    const page = await browser.newPage();
    try {
      const errors = [];
      page.on('pageerror', (e) => errors.push(e));
      const origin = strand[scheme].replace(/^ws/, 'http').replace(/\/$/, '');
      await page.goto(`${origin}/demo`);
      await page.waitForFunction(() => window.demo?.done === true, null, { timeout: 30_000 });
      const results = await page.evaluate(() => window.demo.results);
      assert.deepEqual(errors, []);
      assert.deepEqual(
        results.map((r) => r.kind),
        ['unary', 'server streaming', 'client streaming', 'duplex', 'raw', 'timeout', 'cancellation', 'error'],
      );
      for (const r of results) assert.ok(r.ok, `${r.kind}: ${r.text}`);
      assert.match(await page.textContent('#meta'), /8 of 8 calls as expected/);
    } finally {
      await page.close();
    }
  });
}
