// Builds dist/ (tsc: ESM modules and .d.ts) and the minified browser bundle
// dist/strand-client.min.js (esbuild), prints the bundle's size, and fails if
// it is over the budget of 12 KiB minified and gzipped. The bundle is also
// copied to cli/demo/strand-client.min.js, which `strand serve` embeds for
// its /demo page (inside the strand-cli crate, so that it packages; committed,
// so that cargo builds without Node; test.sh checks that the committed copy
// matches the sources).
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync, rmSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const BUDGET = 12 * 1024;

rmSync(join(root, 'dist'), { recursive: true, force: true });
execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', root], { stdio: 'inherit' });

const bundle = join(root, 'dist/strand-client.min.js');
await build({
  entryPoints: [join(root, 'src/index.ts')],
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2022',
  platform: 'browser',
  outfile: bundle,
  legalComments: 'none',
});
const bytes = readFileSync(bundle);
const gz = gzipSync(bytes, { level: 9 }).length;
const kib = (n) => `${(n / 1024).toFixed(2)} KiB`;
console.log(`bundle dist/strand-client.min.js: ${bytes.length} bytes minified (${kib(bytes.length)}), ${gz} bytes gzipped (${kib(gz)}); budget ${kib(BUDGET)}`);
copyFileSync(bundle, join(root, '../../cli/demo/strand-client.min.js'));
if (gz > BUDGET) {
  console.error(`bundle over budget: ${gz} > ${BUDGET} bytes gzipped`);
  process.exit(1);
}
