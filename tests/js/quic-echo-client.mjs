// A @matrixai/quic client: opens <count> concurrent bidi streams, writes
// `quic hello <i>` on each, finishes it, and checks that the echo matches.
// Prints `ok <i>` per stream, then `done`, and exits 0; any failure prints
// `fail ...` and exits 1. Gives up after 30 s.
//
// usage: node quic-echo-client.mjs <port> <count> <ca.pem|insecure> [<cert.pem> <key.pem>]
// With a CA the server is verified as `localhost`; with a cert and key the
// client presents them (mTLS).
import fs from 'node:fs';
import { QUICClient } from '@matrixai/quic';
import { clientCrypto, logger, exitAfter, readAll } from './quic-common.mjs';

exitAfter(30_000);
const [port, count, ca, certPath, keyPath] = process.argv.slice(2);
const config = ca === 'insecure'
  ? { verifyPeer: false }
  : { verifyPeer: true, ca: fs.readFileSync(ca, 'utf8') };
if (certPath) {
  config.cert = fs.readFileSync(certPath, 'utf8');
  config.key = fs.readFileSync(keyPath, 'utf8');
}
try {
  const client = await QUICClient.createQUICClient({
    host: '127.0.0.1',
    port: Number(port),
    serverName: 'localhost',
    crypto: clientCrypto,
    config,
    logger,
  });
  const calls = [];
  for (let i = 0; i < Number(count); i++) {
    calls.push((async () => {
      const stream = client.connection.newStream();
      const message = Buffer.from(`quic hello ${i}`);
      const writer = stream.writable.getWriter();
      await writer.write(message);
      await writer.close();
      const echo = await readAll(stream.readable);
      if (!echo.equals(message)) throw new Error(`stream ${i}: got ${JSON.stringify(echo.toString())}`);
      console.log(`ok ${i}`);
    })());
  }
  await Promise.all(calls);
  await client.destroy({ isApp: true, errorCode: 0 });
  console.log('done');
  process.exit(0);
} catch (e) {
  console.log(`fail ${e?.constructor?.name} ${e?.message} ${e?.cause?.message ?? ''}`);
  process.exit(1);
}
