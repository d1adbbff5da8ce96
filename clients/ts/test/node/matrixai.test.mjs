// The client against the JS stack it is wire-compatible with: a real
// @matrixai/rpc server over @matrixai/ws (wss), in this process.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { connect, RpcError, StreamError } from '../../dist/index.js';
import { selfSigned, startMatrixServer } from '../support/matrixai-server.mjs';
import { until } from '../support/strand.mjs';

let server;
let client;
let TrustingWebSocket;
const refreshed = [];
const enc = new TextEncoder();
const dec = new TextDecoder();

before(async () => {
  const identity = selfSigned();
  server = await startMatrixServer(identity);
  TrustingWebSocket = class extends WebSocket {
    constructor(url) {
      super(url, { ca: identity.cert });
    }
  };
  client = await connect(server.url, { WebSocket: TrustingWebSocket, token: 'let-me-in', onToken: (t) => refreshed.push(t) });
});

after(async () => {
  await client?.close(2000);
  await server?.stop();
});

test('unary', async () => {
  assert.deepEqual(await client.unary('echo', { hello: 'world' }), {
    hello: 'world',
    echoed: true,
    metadata: { authorization: 'Bearer fresh-token' },
  });
});

test('auth: the token is refreshed from result.metadata and used from then on', async () => {
  client.token = 'let-me-in';
  await client.unary('whoami', {});
  assert.equal(client.token, 'fresh-token');
  assert.equal(refreshed.at(-1), 'fresh-token');
  assert.equal((await client.unary('whoami', {})).who, 'js');
  await assert.rejects(client.unary('whoami', {}, { token: 'wrong' }), (e) => e instanceof RpcError && e.code === -32001 && e.data.type === 'ErrorAuth');
  await assert.rejects(client.unary('whoami', {}, { token: null }), (e) => e instanceof RpcError && e.code === -32001);
});

test('server streaming', async () => {
  const got = [];
  for await (const x of client.serverStream('count', { n: 500 })) got.push(x.i);
  assert.equal(got.length, 500);
  assert.ok(got.every((v, i) => v === i));
});

test('client streaming (each message after the first waits for its ACK)', async () => {
  for (let round = 0; round < 20; round++) {
    const call = client.clientStream('sum');
    for (const v of [1, 2, 3, 4, 5]) call.write({ v: v + round });
    assert.deepEqual((await call.end()).sum, 15 + 5 * round);
  }
});

test('duplex', async () => {
  const call = client.duplex('chat');
  const it = call[Symbol.asyncIterator]();
  for (const msg of ['a', 'b']) {
    await call.write({ msg });
    assert.equal((await it.next()).value.reply, `re:${msg}`);
  }
  await call.end();
  assert.ok((await it.next()).done);
});

test('raw', async () => {
  // js-rpc runs no middleware on raw calls: the token rides in params.
  const call = await client.raw('rawUpper', { mode: 'upper' });
  assert.equal(call.result.accepted, 'upper');
  const w = call.writable.getWriter();
  await w.write(enc.encode('raw bytes here'));
  await w.close();
  let text = '';
  for await (const c of call.readable) text += dec.decode(c);
  assert.equal(text, 'RAW BYTES HERE');
});

test('rawPipelined: bytes written before the leading response reach the JS server', async () => {
  const call = await client.rawPipelined('rawUpper', { mode: 'upper' });
  const w = call.writable.getWriter();
  await w.write(enc.encode('sent early'));
  await w.close();
  const response = await call.response;
  assert.equal(response.result.accepted, 'upper');
  let text = '';
  for await (const c of response.readable) text += dec.decode(c);
  assert.equal(text, 'SENT EARLY');
});

test('raw: 8 MiB echoed whole and in order', async () => {
  const total = 8 << 20;
  const call = await client.raw('rawEcho', {});
  const sent = createHash('sha256');
  const got = createHash('sha256');
  const writing = (async () => {
    const w = call.writable.getWriter();
    for (let off = 0; off < total; off += 1 << 16) {
      const chunk = new Uint8Array(1 << 16);
      for (let k = 0; k < chunk.length; k++) chunk[k] = ((off + k) * 31) ^ (off >> 16);
      sent.update(chunk);
      await w.write(chunk);
    }
    await w.close();
  })();
  let n = 0;
  for await (const c of call.readable) {
    got.update(c);
    n += c.length;
  }
  await writing;
  assert.equal(n, total);
  assert.equal(got.digest('hex'), sent.digest('hex'));
});

test('handler error: -32006 with data.type', async () => {
  await assert.rejects(client.unary('fail', {}), (e) =>
    e instanceof RpcError && e.code === -32006 && e.data.type === 'TypeError' && /handler exploded/.test(e.data.message));
});

test('unknown method: the JS server resets the stream without answering', async () => {
  await assert.rejects(client.unary('nope', {}), (e) => e instanceof StreamError && /without answering/.test(e.message));
  assert.deepEqual((await client.unary('echo', { after: 1 })).after, 1);
});

test('timeout: the call fails with -32008 and the handler is cancelled', async () => {
  const before = server.events.filter((e) => e === 'cancelled slow').length;
  await assert.rejects(client.unary('slow', {}, { timeout: 300 }), (e) => e instanceof RpcError && e.code === -32008);
  assert.ok(await until(() => server.events.filter((e) => e === 'cancelled slow').length > before));
});

test('cancellation: leaving a server stream early cancels the handler', async () => {
  let n = 0;
  for await (const _ of client.serverStream('hangStream', {})) if (++n === 2) break;
  assert.ok(await until(() => server.events.includes('cancelled hangStream')));
});

test('cancellation: an AbortSignal cancels the handler', async () => {
  const before = server.events.filter((e) => e === 'cancelled slow').length;
  const ac = new AbortController();
  const call = client.unary('slow', {}, { signal: ac.signal });
  setTimeout(() => ac.abort(), 100);
  await assert.rejects(call, { name: 'AbortError' });
  assert.ok(await until(() => server.events.filter((e) => e === 'cancelled slow').length > before));
});
