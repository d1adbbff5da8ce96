// A @matrixai/quic client that aborts a stream: it writes `abort me`, waits
// for one byte from the server, then cancels the stream (RESET_STREAM and
// STOP_SENDING, both with code 7 through `reasonToCode`). Prints `cancelled`,
// then `done` once the server closed the connection, and exits 0; failures
// print `fail ...` and exit 1. Gives up after 30 s.
//
// usage: node quic-abort-client.mjs <port>
import { QUICClient, events } from '@matrixai/quic';
import { clientCrypto, logger, exitAfter } from './quic-common.mjs';

exitAfter(30_000);
const [port] = process.argv.slice(2);
try {
  const client = await QUICClient.createQUICClient({
    host: '127.0.0.1',
    port: Number(port),
    serverName: 'localhost',
    crypto: clientCrypto,
    config: { verifyPeer: false },
    reasonToCode: () => 7,
    logger,
  });
  const closed = new Promise((resolve) => {
    client.connection.addEventListener(events.EventQUICConnectionStopped.name, resolve, { once: true });
  });
  const stream = client.connection.newStream();
  const writer = stream.writable.getWriter();
  await writer.write(Buffer.from('abort me'));
  const reader = stream.readable.getReader();
  const { value } = await reader.read();
  if (value?.length !== 1) throw new Error(`expected one byte, got ${value?.length}`);
  writer.releaseLock();
  reader.releaseLock();
  stream.cancel(new Error('client gave up'));
  console.log('cancelled');
  await closed;
  console.log('done');
  process.exit(0);
} catch (e) {
  console.log(`fail ${e?.constructor?.name} ${e?.message}`);
  process.exit(1);
}
