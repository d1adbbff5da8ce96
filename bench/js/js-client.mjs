// The js_client case's Node client: a real @matrixai/ws client (no window
// advertisement; every stream opens with an ACK round trip) making unary
// calls the way @matrixai/rpc's unary caller puts them on the wire: open a
// stream, write one JSON-RPC request, close the writable side, read the
// reply to its end. Raw streams rather than RPCClient, so the bare mux echo
// server (whose reply is the request itself) is driven identically.
//
// usage: node js-client.mjs <js folder> <port> <callers> <warmup ms> <measure ms>;
// reads one JSON line on stdin: {"ca": PEM}. Prints `start` after the
// warm-up and `result {json}` at the end, or `error <reason>`.
import { createInterface } from 'node:readline';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [jsDir, port, callers, warmMs, measureMs] = process.argv.slice(2);
// The packages are tests/js's (npm install there): its interop module dials
// with them, so this script needs no node_modules of its own.
const { dial } = await import(pathToFileURL(path.join(path.resolve(jsDir), 'rpc-common.mjs')).href);

setTimeout(() => {
  console.log('error timeout');
  process.exit(2);
}, 60_000).unref();

const lines = createInterface({ input: process.stdin });
const { ca } = JSON.parse(await new Promise((resolve) => lines.once('line', resolve)));

const request = new TextEncoder().encode(
  '{"jsonrpc":"2.0","method":"echo","params":{"msg":"hello world","n":42},"id":1}',
);
const dec = new TextDecoder();

async function call(client) {
  const stream = await client.connection.newStream();
  const writer = stream.writable.getWriter();
  const reading = (async () => {
    let text = '';
    for await (const chunk of stream.readable) text += dec.decode(chunk, { stream: true });
    return text;
  })();
  await writer.write(request);
  await writer.close();
  const reply = await reading;
  if (!reply.includes('hello world')) throw new Error(`bad reply ${reply}`);
}

async function runFor(client, ms, lat) {
  const end = performance.now() + ms;
  await Promise.all(
    Array.from({ length: Number(callers) }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await call(client);
        lat?.push(performance.now() - t);
      }
    }),
  );
}

try {
  const client = await dial('ws', Number(port), { ca });
  await runFor(client, Number(warmMs));
  console.log('start');
  const lat = [];
  const t0 = performance.now();
  await runFor(client, Number(measureMs), lat);
  const secs = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  const pct = (p) => (lat.length ? lat[Math.round((lat.length - 1) * p)] * 1000 : 0);
  console.log(`result ${JSON.stringify({
    calls_per_s: lat.length / secs,
    p50_us: pct(0.5),
    p99_us: pct(0.99),
    calls: lat.length,
  })}`);
  await client.close();
  process.exit(0);
} catch (e) {
  console.log(`error ${e?.message ?? e}`);
  process.exit(1);
}
