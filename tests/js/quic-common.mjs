// Shared helpers for the QUIC interop scripts (@matrixai/quic 2.x).
import { webcrypto } from 'node:crypto';
import Logger, { LogLevel } from '@matrixai/logger';

// js-quic servers sign and verify their retry tokens with these ops.
export async function serverCrypto() {
  const alg = { name: 'HMAC', hash: 'SHA-256' };
  const key = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const raw = await webcrypto.subtle.exportKey('raw', key);
  const importKey = (k) => webcrypto.subtle.importKey('raw', k, alg, true, ['sign', 'verify']);
  return {
    key: raw,
    ops: {
      async sign(k, data) {
        return webcrypto.subtle.sign('HMAC', await importKey(k), data);
      },
      async verify(k, data, sig) {
        return webcrypto.subtle.verify('HMAC', await importKey(k), sig, data);
      },
    },
  };
}

// js-quic clients need random bytes for connection ids.
export const clientCrypto = {
  ops: {
    async randomBytes(data) {
      webcrypto.getRandomValues(new Uint8Array(data));
    },
  },
};

export const logger = new Logger('quic-interop', LogLevel.WARN);

// Every script ends by itself: a peer that hangs must not hang the test.
export function exitAfter(ms) {
  setTimeout(() => {
    console.log('timeout');
    process.exit(2);
  }, ms);
}

export async function readAll(readable) {
  const chunks = [];
  for await (const chunk of readable) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}
