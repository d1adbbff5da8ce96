// The client in Node (the `ws` package as its WebSocket) against a real
// `strand serve`: every call kind, errors, timeouts, cancellation reaching
// the handler, auth, 8 MiB through `upper`, wss, a killed server, close().
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { connect, RpcError, ConnectionError } from '../../dist/index.js';
import { startStrand, until } from '../support/strand.mjs';

let server;
let client;
const enc = new TextEncoder();
const dec = new TextDecoder();

before(async () => {
  server = await startStrand(['--ws', '127.0.0.1:0', '--wss', '127.0.0.1:0'], { verbose: true });
  client = await connect(server.ws, { WebSocket });
});

after(async () => {
  await client?.close(2000);
  await server?.kill();
});

const cancelledCalls = (method) =>
  server.log().split('\n').filter((l) => l.includes('caller went away') && l.includes(`method="${method}"`)).length;

test('unary: echo returns its params', async () => {
  assert.deepEqual(await client.unary('echo', { hello: 'world', n: [1, 2] }), { hello: 'world', n: [1, 2] });
  assert.equal(client.transport, 'WebSocket');
});

test('server streaming: count yields every item in order', async () => {
  const got = [];
  for await (const item of client.serverStream('count', { n: 1000 })) got.push(item.i);
  assert.equal(got.length, 1000);
  assert.ok(got.every((v, i) => v === i));
});

test('server streaming as a ReadableStream', async () => {
  const reader = client.serverStream('count', { n: 3 }).readable.getReader();
  const got = [];
  for (let r = await reader.read(); !r.done; r = await reader.read()) got.push(r.value);
  assert.deepEqual(got, [{ i: 0 }, { i: 1 }, { i: 2 }]);
});

test('client streaming: sum', async () => {
  const call = client.clientStream('sum');
  for (let x = 1; x <= 100; x++) call.write({ x });
  assert.deepEqual(await call.end(), { sum: 5050 });
});

test('client streaming through a piped ReadableStream', async () => {
  const call = client.clientStream('sum');
  await ReadableStream.from([{ x: 2 }, { x: 3 }]).pipeTo(call.writable);
  assert.deepEqual(await call.result, { sum: 5 });
});

test('duplex: chat answers each message as it arrives', async () => {
  const call = client.duplex('chat');
  const it = call[Symbol.asyncIterator]();
  for (const msg of ['a', 'b', 'c']) {
    await call.write({ msg });
    assert.deepEqual((await it.next()).value, { msg });
  }
  await call.end();
  assert.ok((await it.next()).done);
});

test('raw: upper sends a leading response, then the bytes uppercased', async () => {
  const call = await client.raw('upper', {});
  assert.deepEqual(call.result, { ok: true });
  const w = call.writable.getWriter();
  await w.write(enc.encode('hello, '));
  await w.write(enc.encode('raw bytes'));
  await w.close();
  let text = '';
  for await (const chunk of call.readable) text += dec.decode(chunk, { stream: true });
  assert.equal(text, 'HELLO, RAW BYTES');
});

test('rawPipelined: the bytes go before the leading response is read', async () => {
  const call = await client.rawPipelined('upper', {});
  const w = call.writable.getWriter();
  await w.write(enc.encode('sent early'));
  await w.close();
  const response = await call.response;
  assert.deepEqual(response.result, { ok: true });
  let text = '';
  for await (const chunk of response.readable) text += dec.decode(chunk, { stream: true });
  assert.equal(text, 'SENT EARLY');
});

test('rawPipelined: a refused call rejects its response with the server error', async () => {
  const call = await client.rawPipelined('noSuchMethod', {});
  await assert.rejects(call.response, (e) => e instanceof RpcError && e.code === -32601);
  // The refused call's stream is released, and the connection goes on.
  assert.equal(await until(() => client.mux.streams.size === 0), true, 'the refused stream was released');
  const ok = await client.raw('upper', {});
  assert.deepEqual(ok.result, { ok: true });
  ok.cancel();
  assert.equal(await until(() => client.mux.streams.size === 0), true, 'the cancelled stream was released');
});

test('raw: 8 MiB through upper arrive whole and in order', async () => {
  const total = 8 << 20;
  const call = await client.raw('upper', {});
  const sent = createHash('sha256');
  const writing = (async () => {
    const w = call.writable.getWriter();
    for (let off = 0; off < total; off += 1 << 16) {
      const chunk = new Uint8Array(1 << 16);
      for (let k = 0; k < chunk.length; k++) chunk[k] = 97 + ((off + k) % 26);
      await w.write(chunk);
    }
    await w.close();
  })();
  let n = 0;
  for await (const chunk of call.readable) {
    for (let k = 0; k < chunk.length; k++) {
      if (chunk[k] !== 65 + ((n + k) % 26)) assert.fail(`byte ${n + k} is ${chunk[k]}`);
    }
    n += chunk.length;
    sent.update(chunk);
  }
  await writing;
  assert.equal(n, total);
  assert.ok(call.stats().maxBuffered <= call.stats().window);
});

test('unknown method: RpcError -32601', async () => {
  await assert.rejects(client.unary('nope', {}), (e) => e instanceof RpcError && e.code === -32601 && /nope/.test(e.message));
});

test('handler error: invalid params is RpcError -32602 with data', async () => {
  await assert.rejects(client.unary('sleep', { ms: 'soon' }), (e) => e instanceof RpcError && e.code === -32602 && e.data !== undefined);
  const stream = client.serverStream('count', { n: -1 });
  await assert.rejects(stream[Symbol.asyncIterator]().next(), (e) => e instanceof RpcError && e.code === -32602);
});

test('timeout: sleep past its timeout fails with -32008', async () => {
  await assert.rejects(client.unary('sleep', { ms: 30_000 }, { timeout: 200 }), (e) => e instanceof RpcError && e.code === -32008);
  assert.deepEqual(await client.unary('sleep', { ms: 1 }, { timeout: 10_000 }), { slept: 1 });
});

test('cancellation: aborting a call cancels the server handler', async () => {
  const before = cancelledCalls('sleep');
  const ac = new AbortController();
  const call = client.unary('sleep', { ms: 60_000 }, { signal: ac.signal });
  await new Promise((r) => setTimeout(r, 100));
  ac.abort(new Error('user gave up'));
  await assert.rejects(call, /user gave up/);
  assert.ok(await until(() => cancelledCalls('sleep') > before), 'the server saw the call cancelled');
  assert.deepEqual(await client.unary('echo', { still: 'alive' }), { still: 'alive' });
  // An already aborted signal fails at once.
  await assert.rejects(client.unary('echo', {}, { signal: AbortSignal.abort(new Error('early')) }), /early/);
});

test('cancellation: leaving a server stream early stops the handler', async () => {
  const seen = [];
  for await (const item of client.serverStream('count', { n: 10_000_000 })) {
    seen.push(item.i);
    if (seen.length === 3) break;
  }
  assert.deepEqual(seen, [0, 1, 2]);
  assert.ok(
    await until(() => server.log().includes('method="count"')),
    'the server saw the count call end early',
  );
  assert.equal(await until(() => client.mux.streams.size === 0), true, 'the stream was released');
});

test('wss: the same calls over TLS, trusting the server certificate', async () => {
  const ca = server.certPem;
  class TrustingWebSocket extends WebSocket {
    constructor(url) {
      super(url, { ca });
    }
  }
  const tls = await connect(server.wss, { WebSocket: TrustingWebSocket });
  assert.deepEqual(await tls.unary('echo', { over: 'tls' }), { over: 'tls' });
  const got = [];
  for await (const x of tls.serverStream('count', { n: 3 })) got.push(x.i);
  assert.deepEqual(got, [0, 1, 2]);
  await tls.close();
  // Untrusted: the connection fails.
  await assert.rejects(connect(server.wss, { WebSocket }), ConnectionError);
});

test('auth: strand serve --token accepts the token, refreshes it, refuses others', async (t) => {
  const guarded = await startStrand(['--ws', '127.0.0.1:0', '--token', 'sesame', '--refresh-token', 'fresh']);
  t.after(() => guarded.kill());
  const refreshed = [];
  const good = await connect(guarded.ws, { WebSocket, token: 'sesame', onToken: (tok) => refreshed.push(tok) });
  assert.equal((await good.unary('whoami', {})).name, 'demo');
  // The first response handed `fresh` back; the client sends it from now on.
  assert.equal(good.token, 'fresh');
  assert.deepEqual(refreshed, ['fresh']);
  assert.equal((await good.unary('whoami', {})).name, 'refreshed');
  // Per call: another token, or none.
  await assert.rejects(good.unary('whoami', {}, { token: 'wrong' }), (e) => e instanceof RpcError && e.code === -32020);
  await assert.rejects(good.unary('whoami', {}, { token: null }), (e) => e instanceof RpcError && e.code === -32020);
  // Every kind carries it, and hands the metadata back.
  const count = good.serverStream('count', { n: 2 });
  const items = [];
  for await (const x of count) items.push(x.i);
  assert.deepEqual(items, [0, 1]);
  assert.equal(count.metadata.authorization, 'Bearer fresh');
  const sum = good.clientStream('sum');
  await sum.write({ x: 1 });
  assert.deepEqual(await sum.end(), { sum: 1, metadata: { authorization: 'Bearer fresh' } });
  const chat = good.duplex('chat');
  await chat.write({ m: 1 });
  assert.equal((await chat[Symbol.asyncIterator]().next()).value.m, 1);
  assert.equal(chat.metadata.authorization, 'Bearer fresh');
  await chat.end();
  const raw = await good.raw('upper', {});
  assert.equal(raw.result.ok, true);
  assert.equal(raw.metadata.authorization, 'Bearer fresh');
  raw.cancel();
  const anon = await connect(guarded.ws, { WebSocket });
  await assert.rejects(anon.unary('echo', {}), (e) => e instanceof RpcError && e.code === -32020);
  await good.close();
  await anon.close();
});

test('a stopped reader: the server holds at most the window for the stream, then every byte arrives', async () => {
  const total = 16 << 20;
  const call = await client.raw('upper', {});
  const { id, window } = call.stats();
  const writing = (async () => {
    const w = call.writable.getWriter();
    for (let off = 0; off < total; off += 1 << 16) {
      const chunk = new Uint8Array(1 << 16);
      for (let k = 0; k < chunk.length; k++) chunk[k] = 97 + ((off + k) % 26);
      await w.write(chunk);
    }
    await w.close();
  })();
  assert.ok(await until(() => call.stats().buffered === window), 'the window filled');
  const held = call.stats().received;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(call.stats().received, held, 'nothing more arrived');
  const server = (await client.unary('stats', {})).streams.find((s) => s.id === id);
  assert.equal(server.in_flight, window);
  assert.equal(server.send_credit, 0);
  assert.ok(server.buffered <= server.window);
  let n = 0;
  for await (const chunk of call.readable) {
    for (let k = 0; k < chunk.length; k++) {
      if (chunk[k] !== 65 + ((n + k) % 26)) assert.fail(`byte ${n + k} is ${chunk[k]}`);
    }
    n += chunk.length;
  }
  await writing;
  assert.equal(n, total);
  assert.ok(call.stats().maxBuffered <= window);
});

test('connection killed mid-call: every pending call fails with ConnectionError', async () => {
  const doomed = await startStrand(['--ws', '127.0.0.1:0']);
  const c = await connect(doomed.ws, { WebSocket });
  // Outcomes taken at once: the calls fail while the test still waits for the kill.
  const outcome = (p) => p.then(() => 'resolved', (e) => e);
  const sleeping = outcome(c.unary('sleep', { ms: 60_000 }));
  const stream = c.serverStream('count', { n: 1e9 });
  const it = stream[Symbol.asyncIterator]();
  await it.next();
  const dup = c.duplex('chat');
  await dup.write({ m: 1 });
  await new Promise((r) => setTimeout(r, 100));
  const streaming = outcome((async () => {
    for (;;) await it.next();
  })());
  await doomed.kill('SIGKILL');
  const e = await sleeping;
  assert.ok(e instanceof ConnectionError && e.code === 1006 && /lost/.test(e.message), String(e));
  assert.ok((await streaming) instanceof ConnectionError);
  await assert.rejects(dup.write({ m: 2 }), ConnectionError);
  assert.equal((await c.closed).code, 1006);
  await assert.rejects(c.unary('echo', {}), ConnectionError);
});

test('close() lets calls under way finish, then closes with 1000', async () => {
  const c = await connect(server.ws, { WebSocket });
  const slow = c.unary('sleep', { ms: 300 });
  const closing = c.close();
  await assert.rejects(c.unary('echo', {}), /closing/);
  assert.deepEqual(await slow, { slept: 300 });
  await closing;
  const err = await c.closed;
  assert.equal(err.code, 1000);
});
