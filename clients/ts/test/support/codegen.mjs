// Compiles the generated clients for the round-trip tests (docs/openrpc.md):
// examples/demo-client.ts (checked in), a client generated now from
// examples/calc.openrpc.json, and test/openrpc/round-trip.ts, under
// `tsc --strict` into build-codegen/. The output imports the client package
// for types only, so it runs in Node and in the browser alike.
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';
import { STRAND_BIN } from './strand.mjs';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Path (under clients/ts) of the compiled round trip module. */
export const ROUND_TRIP = 'build-codegen/test/openrpc/round-trip.js';

export function compileGenerated() {
  rmSync(resolve(root, 'build-codegen'), { recursive: true, force: true });
  const calc = execFileSync(STRAND_BIN, ['codegen', 'ts', resolve(root, 'examples/calc.openrpc.json')], { encoding: 'utf8' });
  writeFileSync(resolve(root, 'test/openrpc/calc-client.generated.ts'), calc);
  execFileSync(process.execPath, [resolve(root, 'node_modules/typescript/bin/tsc'), '-p', resolve(root, 'test/openrpc/tsconfig.json')], {
    stdio: 'inherit',
  });
  return resolve(root, ROUND_TRIP);
}

/** What roundTrip() returns against `strand serve`'s demo service. */
export const EXPECTED_ROUND_TRIP = {
  echo: { hello: 'world' },
  counted: [0, 1, 2],
  total: 3.5,
  reply: { msg: 'hi' },
  ok: true,
  text: 'BYTES',
  earlyOk: true,
  earlyText: 'EARLY',
  who: null,
  slept: 1,
  transport: 'ws',
  kinds: ['unary', 'server', 'client', 'duplex', 'raw', 'unary', 'unary', 'unary'],
};
