// Headless Chromium for the browser tier and the demo screenshot, driven
// with playwright-core. The browser is the system's: /usr/bin/chromium
// (CHROMIUM env overrides); nothing is downloaded.
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Launches headless Chromium with a fresh profile. `spki`: base64 SHA-256
 * pins of certificates to trust (--ignore-certificate-errors-spki-list). */
export async function launch({ spki = [] } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Chromium (Debian: apt-get install -y chromium) or set CHROMIUM`);
  }
  const args = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ];
  if (spki.length) args.push(`--ignore-certificate-errors-spki-list=${spki.join(',')}`);
  return chromium.launch({ executablePath: CHROMIUM, args, timeout: 60_000 });
}
