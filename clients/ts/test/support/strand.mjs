// Spawns a real `strand serve` for the tests and parses what it prints:
// `certificate <path>` and `listening ws://…` / `wss://…` / `quic://…`.
//
// The binary: env STRAND_BIN, default ../../target/debug/strand (relative
// to clients/ts).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createHash, X509Certificate } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
export const STRAND_BIN = resolve(here, '../..', process.env.STRAND_BIN ?? '../../target/debug/strand');

/** Starts `strand serve` with `args` (e.g. ['--ws', '127.0.0.1:0']). Resolves
 * with { ws, wss, cert, child, log(), kill() } once every listener printed
 * its line. `verbose` adds -vv (debug logs on stderr, kept in log()). */
export async function startStrand(args, { verbose = false } = {}) {
  if (!existsSync(STRAND_BIN)) {
    throw new Error(`strand binary not found at ${STRAND_BIN}: build it (cargo build -p strand-cli) or set STRAND_BIN`);
  }
  const want = ['--ws', '--wss', '--quic'].filter((a) => args.includes(a)).length || 3;
  const child = spawn(STRAND_BIN, [...(verbose ? ['-vv'] : []), 'serve', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const server = { child, ws: null, wss: null, cert: null, certPem: null };
  server.log = () => stderr;
  server.exited = new Promise((r) => child.once('exit', (code, signal) => r({ code, signal })));
  server.kill = async (signal = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await server.exited;
  };
  await new Promise((resolveStart, reject) => {
    const timer = setTimeout(() => reject(new Error(`strand serve did not start: ${stderr}`)), 20_000);
    let out = '';
    let seen = 0;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      out += d;
      let nl;
      while ((nl = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, nl).trim();
        out = out.slice(nl + 1);
        const [what, value] = line.split(/\s+/);
        if (what === 'certificate') server.cert = value;
        if (what === 'listening') {
          const scheme = value.split(':')[0];
          server[scheme] = value;
          if (++seen === want) {
            clearTimeout(timer);
            resolveStart();
          }
        }
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`strand serve exited (${code}): ${stderr}`));
    });
  });
  if (server.cert) server.certPem = readFileSync(server.cert, 'utf8');
  return server;
}

/** base64 SHA-256 of a certificate's SubjectPublicKeyInfo: the pin that
 * Chromium's --ignore-certificate-errors-spki-list takes. */
export function spkiHash(pem) {
  const spki = new X509Certificate(pem).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('base64');
}

/** Waits until `f()` is truthy, polling every `every` ms, at most `ms`. */
export async function until(f, ms = 10_000, every = 20) {
  for (let waited = 0; waited < ms; waited += every) {
    if (await f()) return true;
    await new Promise((r) => setTimeout(r, every));
  }
  return false;
}
