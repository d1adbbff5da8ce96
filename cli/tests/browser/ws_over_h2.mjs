// Loads strand serve's demo page in headless Chromium and waits for its
// calls (every kind) over the page's own wss:// origin. Prints one JSON
// line: the page's HTTP version, the call results and the summary.
// Arguments: clients/ts directory (for playwright-core), page URL, a fresh
// profile directory. HOME must point at the directory whose .pki/nssdb
// trusts the test CA.
import { createRequire } from 'node:module';

const [tsDir, url, profile] = process.argv.slice(2);
const require = createRequire(`${tsDir}/package.json`);
const { chromium } = require('playwright-core');

const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  timeout: 60_000,
});
try {
  const page = await context.newPage();
  await page.goto(url, { timeout: 60_000 });
  await page.waitForFunction(() => window.demo && window.demo.done, null, { timeout: 60_000 });
  const protocol = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);
  const results = await page.evaluate(() => window.demo.results);
  const meta = await page.textContent('#meta');
  console.log(JSON.stringify({ protocol, results, meta }));
} finally {
  await context.close();
}
