// A real @matrixai/rpc client on @matrixai/ws or @matrixai/quic, run against
// a strand server. Runs every case in turn and prints `ok <case> <detail>`
// or `fail <case> <reason>` for each, then `done`. Exits within 90 s.
//
// usage: node rpc-client.mjs <ws|quic> <port> [case,case,...]; reads one
// JSON line on stdin: {"ca": PEM} (the server certificate to trust). With a
// list, only those cases run.
import { createInterface } from 'node:readline';
import { createHash } from 'node:crypto';
import { exitAfter, dial, makeClient, IDLE_MS } from './rpc-common.mjs';

exitAfter(90_000);
const [carrier, port, only] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin });
const first = await new Promise((resolve) => lines.once('line', resolve));
const { ca } = JSON.parse(first);

const enc = new TextEncoder();
const dec = new TextDecoder();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const token = { value: 'let-me-in', refreshed: null };

async function collect(readable) {
  const out = [];
  for await (const item of readable) out.push(item);
  return out;
}

function describe(e) {
  return JSON.stringify({
    name: e?.constructor?.name,
    code: e?.code ?? null,
    message: e?.message ?? String(e),
    cause: e?.cause ? { name: e.cause.constructor?.name, message: e.cause.message, code: e.cause.code ?? null } : null,
  });
}

async function expectThrow(f) {
  try {
    await f();
  } catch (e) {
    return e;
  }
  throw new Error('expected an error, the call succeeded');
}

const conn = await dial(carrier, Number(port), { ca });
const client = makeClient(conn.streamFactory, token);
const m = client.methods;

const cases = {
  async unary() {
    const out = await m.echo({ hello: 'world' });
    if (out.hello !== 'world' || out.echoed !== true) throw new Error(JSON.stringify(out));
    return 'world';
  },
  async serverStream() {
    const items = await collect(await m.count({ n: 3 }));
    const is = items.map((x) => x.i).join(',');
    if (is !== '0,1,2') throw new Error(is);
    return is;
  },
  async clientStream() {
    const { output, writable } = await m.sum();
    const w = writable.getWriter();
    for (const x of [1, 2, 3]) await w.write({ x });
    await w.close();
    const out = await output;
    if (out.sum !== 6) throw new Error(JSON.stringify(out));
    return '6';
  },
  async duplex() {
    const stream = await m.chat();
    const w = stream.writable.getWriter();
    const r = stream.readable.getReader();
    const got = [];
    for (const msg of ['a', 'b']) {
      await w.write({ msg });
      got.push((await r.read()).value.reply);
    }
    await w.close();
    if (!(await r.read()).done) throw new Error('more replies than requests');
    if (got.join(',') !== 're:a,re:b') throw new Error(got.join(','));
    return got.join(',');
  },
  async raw() {
    const stream = await m.rawUpper({ mode: 'upper', metadata: { authorization: 'Bearer let-me-in' } });
    if (stream.meta.result?.accepted !== 'upper') throw new Error(JSON.stringify(stream.meta));
    const reading = collect(stream.readable);
    const w = stream.writable.getWriter();
    await w.write(enc.encode('raw bytes here'));
    await w.close();
    const text = (await reading).map((c) => dec.decode(c)).join('');
    if (text !== 'RAW BYTES HERE') throw new Error(text);
    return text.replaceAll(' ', '_');
  },
  async handlerError() {
    const e = await expectThrow(() => m.fail({}));
    if (!(e.cause instanceof TypeError) || e.cause.message !== 'handler exploded') throw new Error(describe(e));
    return `${e.constructor.name} ${e.cause.constructor.name}`;
  },
  async unknownMethod() {
    const e = await expectThrow(() => m.nope({}));
    return describe(e);
  },
  async timeout() {
    const e = await expectThrow(() => m.slow({}, { timer: 300 }));
    return describe(e);
  },
  async auth() {
    token.refreshed = null;
    await m.whoami({});
    if (token.refreshed !== 'fresh-token') throw new Error(`refreshed ${token.refreshed}`);
    token.value = 'wrong';
    const bad = await expectThrow(() => m.whoami({}));
    token.value = null;
    const none = await expectThrow(() => m.whoami({}));
    token.value = 'let-me-in';
    return `refreshed=${token.refreshed} wrong=${describe(bad)} none=${describe(none)}`;
  },
  async cancel() {
    const readable = await m.hangStream({});
    const r = readable.getReader();
    const firstItem = await r.read();
    if (firstItem.value?.i !== 0) throw new Error(JSON.stringify(firstItem));
    await r.cancel(new Error('client gave up'));
    return 'sent';
  },
  async big() {
    const total = 8 * 1024 * 1024;
    const stream = await m.rawEcho({ metadata: { authorization: 'Bearer let-me-in' } });
    const sent = createHash('sha256');
    const reading = (async () => {
      const h = createHash('sha256');
      let n = 0;
      for await (const c of stream.readable) {
        h.update(c);
        n += c.length;
      }
      return [n, h.digest('hex')];
    })();
    const w = stream.writable.getWriter();
    const chunk = new Uint8Array(64 * 1024);
    for (let off = 0; off < total; off += chunk.length) {
      for (let k = 0; k < chunk.length; k++) chunk[k] = ((off + k) * 31) & 0xff ^ (off >> 16);
      sent.update(chunk);
      await w.write(chunk.slice());
    }
    await w.close();
    const [n, digest] = await reading;
    if (n !== total || digest !== sent.digest('hex')) throw new Error(`got ${n} bytes`);
    return `${n}`;
  },
  async burst() {
    for (let round = 0; round < 50; round++) {
      const { output, writable } = await m.sum();
      const w = writable.getWriter();
      for (const v of [1, 2, 3, 4, 5]) w.write({ x: v + round });
      await w.close();
      const out = await output;
      if (out.sum !== 15 + 5 * round) throw new Error(`round ${round}: ${JSON.stringify(out)}`);
      const items = await collect(await m.count({ n: 5 }));
      if (items.length !== 5) throw new Error(`round ${round}: ${items.length} items`);
    }
    return '50';
  },
  // Sequential unary calls: each ends with our CLOSE(Write) answering the
  // server's CLOSE(Read), usually after the server released the stream.
  async manyUnary() {
    for (let i = 0; i < 300; i++) {
      const out = await m.echo({ hello: i });
      if (out.hello !== i) throw new Error(`call ${i}: ${JSON.stringify(out)}`);
    }
    return '300';
  },
  async keepalive() {
    await sleep(IDLE_MS * 2.5);
    const out = await m.echo({ hello: 'still here' });
    if (out.hello !== 'still here') throw new Error(JSON.stringify(out));
    return `${IDLE_MS * 2.5}ms`;
  },
};

const selected = only ? only.split(',') : Object.keys(cases);
for (const name of selected) {
  const run = cases[name];
  try {
    console.log(`ok ${name} ${await run()}`);
  } catch (e) {
    console.log(`fail ${name} ${describe(e)}`);
  }
}
await conn.close();
console.log('done');
process.exit(0);
