// The browser test cases, run in the page by test/browser/browser.test.mjs
// through the minified bundle. Each takes the server URL(s) and returns a
// summary; a failed check throws.
import { connect as connectClient, RpcError, ConnectionError } from '../../dist/strand-client.min.js';

const enc = new TextEncoder();
const dec = new TextDecoder();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const check = (ok, what) => {
  if (!ok) throw new Error(`check failed: ${what}`);
};
const failure = async (p) => {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to fail');
};
const describe = (e) => ({ name: e.name, code: e.code, message: e.message });

// WebSocketStream whenever the page has it (the test page deletes it for
// the plain WebSocket runs): the client then falls back to WebSocket.
const connect = (url, options = {}) => connectClient(url, { webSocketStream: true, ...options });

const clients = new Map();
async function client(url) {
  if (!clients.has(url)) clients.set(url, await connect(url));
  return clients.get(url);
}

// Lowercase letters by offset, so any byte can be checked on its own.
function pattern(off, len) {
  const b = new Uint8Array(len);
  for (let k = 0; k < len; k++) b[k] = 97 + ((off + k) % 26);
  return b;
}

async function uploadPattern(writable, total, chunk = 1 << 16) {
  const w = writable.getWriter();
  for (let off = 0; off < total; off += chunk) await w.write(pattern(off, Math.min(chunk, total - off)));
  await w.close();
}

/** Reads `readable` to the end, checking every byte is the uppercased
 * pattern at its offset; `each` sees the count after each chunk. */
async function readUpper(readable, each = () => {}) {
  let n = 0;
  for await (const chunk of readable) {
    for (let k = 0; k < chunk.length; k++) {
      if (chunk[k] !== 65 + ((n + k) % 26)) throw new Error(`byte ${n + k} is ${chunk[k]}`);
    }
    n += chunk.length;
    each(n);
  }
  return n;
}

window.cases = {
  // The client generated from the demo service's OpenRPC document
  // (compiled by test/support/codegen.mjs): every kind, typed.
  async codegen(url) {
    const { roundTrip } = await import('../../build-codegen/test/openrpc/round-trip.js');
    const c = await connectClient(url);
    try {
      return await roundTrip(c);
    } finally {
      await c.close(2000);
    }
  },
  async transport(url) {
    return { transport: (await client(url)).transport, hasWebSocketStream: typeof WebSocketStream === 'function' };
  },

  async unary(url) {
    const c = await client(url);
    const out = await c.unary('echo', { hello: 'browser', list: [1, 2, 3] });
    check(JSON.stringify(out) === '{"hello":"browser","list":[1,2,3]}', JSON.stringify(out));
    return out;
  },

  async serverStream(url) {
    const c = await client(url);
    const got = [];
    for await (const x of c.serverStream('count', { n: 500 })) got.push(x.i);
    check(got.length === 500 && got.every((v, i) => v === i), 'count 0..499');
    const reader = c.serverStream('count', { n: 2 }).readable.getReader();
    check((await reader.read()).value.i === 0 && (await reader.read()).value.i === 1 && (await reader.read()).done, 'as a ReadableStream');
    return got.length;
  },

  async clientStream(url) {
    const c = await client(url);
    const call = c.clientStream('sum');
    for (let x = 1; x <= 10; x++) call.write({ x });
    const out = await call.end();
    check(out.sum === 55, JSON.stringify(out));
    return out;
  },

  async duplex(url) {
    const c = await client(url);
    const call = c.duplex('chat');
    const it = call[Symbol.asyncIterator]();
    const got = [];
    for (const msg of ['a', 'b', 'c']) {
      await call.write({ msg });
      got.push((await it.next()).value.msg);
    }
    await call.end();
    check((await it.next()).done, 'ends after the input');
    check(got.join() === 'a,b,c', got.join());
    return got;
  },

  async raw(url) {
    const c = await client(url);
    const call = await c.raw('upper', {});
    check(call.result.ok === true, JSON.stringify(call.result));
    const w = call.writable.getWriter();
    await w.write(enc.encode('bytes from '));
    await w.write(enc.encode('the browser'));
    await w.close();
    let text = '';
    for await (const chunk of call.readable) text += dec.decode(chunk, { stream: true });
    check(text === 'BYTES FROM THE BROWSER', text);
    return text;
  },

  // The bytes go before the leading response is awaited, then a refused
  // pipelined call rejects its response with the server's error and the
  // connection goes on.
  async rawPipelined(url) {
    const c = await client(url);
    const call = await c.rawPipelined('upper', {});
    const w = call.writable.getWriter();
    await w.write(enc.encode('sent early'));
    await w.close();
    const response = await call.response;
    check(response.result.ok === true, JSON.stringify(response.result));
    let text = '';
    for await (const chunk of response.readable) text += dec.decode(chunk, { stream: true });
    check(text === 'SENT EARLY', text);
    const refused = await c.rawPipelined('nope', {});
    const e = await failure(refused.response);
    check(e instanceof RpcError && e.code === -32601, JSON.stringify(describe(e)));
    const after = await c.unary('echo', { after: 'refused' });
    check(after.after === 'refused', 'the connection still works');
    return text;
  },

  async errors(url) {
    const c = await client(url);
    const unknown = await failure(c.unary('nope', {}));
    check(unknown instanceof RpcError && unknown.code === -32601, JSON.stringify(describe(unknown)));
    const invalid = await failure(c.unary('sleep', { ms: 'soon' }));
    check(invalid instanceof RpcError && invalid.code === -32602, JSON.stringify(describe(invalid)));
    return [describe(unknown), describe(invalid)];
  },

  async timeout(url) {
    const c = await client(url);
    const e = await failure(c.unary('sleep', { ms: 30_000 }, { timeout: 200 }));
    check(e instanceof RpcError && e.code === -32008, JSON.stringify(describe(e)));
    return describe(e);
  },

  async cancel(url) {
    const c = await client(url);
    const ac = new AbortController();
    const call = c.unary('sleep', { ms: 60_000 }, { signal: ac.signal });
    await sleep(100);
    ac.abort(new Error('page gave up'));
    const e = await failure(call);
    check(e.message === 'page gave up', e.message);
    const after = await c.unary('echo', { after: 'cancel' });
    check(after.after === 'cancel', 'the connection still works');
    return describe(e);
  },

  // A server started with --token TOKEN --refresh-token FRESH: TOKEN is
  // accepted as "demo" and every accepted call hands FRESH back, which the
  // client sends from then on (whoami then says "refreshed").
  async auth(url, token) {
    const refreshed = [];
    const good = await connect(url, { token, onToken: (t) => refreshed.push(t) });
    const me = await good.unary('whoami', {});
    check(me.name === 'demo', JSON.stringify(me));
    check(good.token === 'fresh' && refreshed.join() === 'fresh', `token after the first call: ${good.token} (${refreshed})`);
    const afterFirst = [...refreshed];
    const again = await good.unary('whoami', {});
    check(again.name === 'refreshed', JSON.stringify(again));
    const wrong = await failure(good.unary('whoami', {}, { token: 'wrong' }));
    check(wrong instanceof RpcError && wrong.code === -32020, JSON.stringify(describe(wrong)));
    await good.close();
    const anon = await connect(url);
    const none = await failure(anon.unary('echo', {}));
    check(none instanceof RpcError && none.code === -32020, JSON.stringify(describe(none)));
    await anon.close();
    return { identity: me.name, then: again.name, refreshed: afterFirst, wrong: wrong.code, none: none.code };
  },

  async big(url) {
    const c = await client(url);
    const total = 8 << 20;
    const call = await c.raw('upper', {});
    const [n] = await Promise.all([readUpper(call.readable), uploadPattern(call.writable, total)]);
    check(n === total, `${n} bytes`);
    const s = call.stats();
    check(s.maxBuffered <= s.window, `buffered ${s.maxBuffered} > window ${s.window}`);
    return { bytes: n, maxBuffered: s.maxBuffered };
  },

  // 64 MiB through `upper` (the server's output is a 64 MiB stream) with
  // the reader stopped: what the client holds unread never exceeds the
  // window it granted, and once the window is full nothing more arrives.
  // The server's own figures for the stream (the demo `stats` method, on the
  // same connection) show what it holds: sent and unacknowledged at most
  // our window, received and unread at most its window. Then every byte, in
  // order.
  async backpressure(url, total = 64 << 20) {
    const c = await connect(url);
    const call = await c.raw('upper', {});
    const { id, window } = call.stats();
    let uploadError;
    const uploading = uploadPattern(call.writable, total).catch((e) => (uploadError = e));
    let full = false;
    for (let i = 0; i < 1000 && !full; i++) {
      await sleep(20);
      full = call.stats().buffered === window;
    }
    check(full, `the window filled: ${JSON.stringify(call.stats())}`);
    const paused = call.stats();
    await sleep(500);
    const later = call.stats();
    check(later.received === paused.received, `nothing arrived while paused: ${paused.received} then ${later.received}`);
    check(later.peerCredit === 0, 'no credit left with the server');
    const stats = await c.unary('stats', {});
    const server = stats.streams.find((s) => s.id === id);
    check(server, `the server reports stream ${id}: ${JSON.stringify(stats)}`);
    check(server.in_flight === later.buffered, `server in flight ${server.in_flight}, client holds ${later.buffered}`);
    check(server.in_flight <= window && server.send_credit === 0, JSON.stringify(server));
    check(server.buffered <= server.window, JSON.stringify(server));
    let maxSeen = later.buffered;
    const n = await readUpper(call.readable, () => {
      maxSeen = Math.max(maxSeen, call.stats().buffered);
    });
    await uploading;
    check(!uploadError, `upload: ${uploadError}`);
    const end = call.stats();
    check(n === total, `${n} of ${total} bytes`);
    check(end.maxBuffered <= window && maxSeen <= window, `held ${end.maxBuffered} > window ${window}`);
    await c.close();
    return {
      window,
      pausedAt: paused.received,
      heldWhilePaused: later.buffered,
      server,
      maxBuffered: end.maxBuffered,
      total: n,
    };
  },

  // Starts calls on a server the runner is about to kill: a sleeping unary
  // call, and a server stream that is being read (`busy`: data and ACKs
  // flowing when the server dies) or was left after its first item (the
  // server then waits for credit and nothing flows).
  async startDoomed(url, busy) {
    const c = await connect(url);
    const outcome = (p) => p.then(() => 'resolved', (e) => e);
    const iter = c.serverStream('count', { n: 1e9 })[Symbol.asyncIterator]();
    await iter.next();
    let items = 0;
    const drain = async () => {
      while (!(await iter.next()).done) items++;
      return `ended after ${items} more items`;
    };
    window.doomed = {
      c,
      sleeping: outcome(c.unary('sleep', { ms: 60_000 })),
      streaming: busy ? outcome(drain()) : undefined,
      drain,
      outcome,
    };
    await sleep(100);
    if (busy) check(items > 0, 'items flowing');
    else check(c.mux.streams.size === 2, 'two calls under way');
    return 'started';
  },

  async doomedOutcome() {
    const { c, sleeping, drain, outcome } = window.doomed;
    const e1 = await sleeping;
    const e2 = await (window.doomed.streaming ?? outcome(drain()));
    const closed = await c.closed;
    check(typeof e2 !== 'string', e2);
    check(e1 instanceof Error && e2 instanceof Error, `${e1} / ${e2}`);
    const after = await failure(c.unary('echo', {}));
    check(after instanceof ConnectionError, String(after));
    return { sleeping: describe(e1), streaming: describe(e2), closeCode: closed.code };
  },
};
window.casesReady = true;
