// A @matrixai/quic echo server: every stream's bytes are written back, then
// the stream is finished. Prints `listening <port>`, then per stream
// `echoed <n> chunks <len>,<len>,...` (the chunks its reader saw), or
// `stream-error read <code>` when the peer reset it. Exits
// when stdin closes, or after 60 s.
//
// usage: node quic-echo-server.mjs <cert.pem> <key.pem>
import fs from 'node:fs';
import { QUICServer, events } from '@matrixai/quic';
import { serverCrypto, logger, exitAfter } from './quic-common.mjs';

exitAfter(60_000);
const [certPath, keyPath] = process.argv.slice(2);
const server = new QUICServer({
  crypto: await serverCrypto(),
  config: {
    cert: fs.readFileSync(certPath, 'utf8'),
    key: fs.readFileSync(keyPath, 'utf8'),
    verifyPeer: false,
  },
  logger,
});
server.addEventListener(events.EventQUICServerConnection.name, (evt) => {
  const conn = evt.detail;
  conn.addEventListener(events.EventQUICConnectionStream.name, async (evt) => {
    const stream = evt.detail;
    try {
      const chunks = [];
      for await (const chunk of stream.readable) chunks.push(Buffer.from(chunk));
      const data = Buffer.concat(chunks);
      const writer = stream.writable.getWriter();
      await writer.write(data);
      await writer.close();
      console.log(`echoed ${data.length} chunks ${chunks.map((c) => c.length).join(',')}`);
    } catch (e) {
      // The default codeToReason turns a peer code into Error(`read <code>`).
      console.log(`stream-error ${e?.message}`);
    }
  });
});
await server.start({ host: '127.0.0.1', port: 0 });
console.log(`listening ${server.port}`);
process.stdin.resume();
process.stdin.on('end', async () => {
  await server.stop({ force: true });
  process.exit(0);
});
