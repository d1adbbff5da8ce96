// Takes docs/img/browser-demo.png: `strand serve` (STRAND_BIN) on a loopback
// ws listener, its /demo page in headless Chromium once every call is done.
//
//   STRAND_BIN=../../target/debug/strand node scripts/screenshot.mjs
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { startStrand } from '../test/support/strand.mjs';
import { launch } from '../test/support/browser.mjs';

const out = join(dirname(fileURLToPath(import.meta.url)), '../../../docs/img/browser-demo.png');
const server = await startStrand(['--ws', '127.0.0.1:0']);
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 620 } });
  await page.goto(`${server.ws.replace(/^ws/, 'http').replace(/\/$/, '')}/demo`);
  await page.waitForFunction(() => window.demo?.done === true, null, { timeout: 30_000 });
  const results = await page.evaluate(() => window.demo.results);
  const failed = results.filter((r) => !r.ok);
  if (failed.length) throw new Error(`calls failed: ${JSON.stringify(failed)}`);
  mkdirSync(dirname(out), { recursive: true });
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await server.kill();
}
