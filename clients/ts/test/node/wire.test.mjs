// The mux frame codec against the test vectors of docs/protocol.md (each
// produced by the @matrixai/ws encoder), and the JSON-RPC message splitter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encode, decode, DATA, ACK, ERROR, CLOSE, READ, WRITE } from '../../dist/wire.js';
import { JsonReader } from '../../dist/json.js';

const hex = (b) => Buffer.from(b).toString('hex').replace(/(..)(?!$)/g, '$1 ');
const bytes = (h) => new Uint8Array(Buffer.from(h.replace(/ /g, ''), 'hex'));
const text = (s) => new TextEncoder().encode(s);

const vectors = [
  ['stream 0 ACK 1 MiB (opens the stream)', '00 00 01 00 10 00 00', [0, ACK, undefined, 1 << 20]],
  ['stream 3 DATA "hi"', '03 00 00 68 69', [3, DATA, text('hi')]],
  ['stream 2 CLOSE Read', '02 00 03 00', [2, CLOSE, undefined, READ]],
  ['stream 2 CLOSE Write', '02 00 03 01', [2, CLOSE, undefined, WRITE]],
  ['stream 5 ERROR Write code 4002', '05 00 02 01 4f a2', [5, ERROR, undefined, 4002, WRITE]],
  ['stream 4 ERROR Read code 0', '04 00 02 00 00', [4, ERROR, undefined, 0, READ]],
  ['stream 100 DATA empty', '40 64 00 00', [100, DATA, new Uint8Array(0)]],
  ['stream 64 ACK 7', '40 40 00 01 00 00 00 07', [64, ACK, undefined, 7]],
  ['stream 16384 DATA "x"', '80 00 40 00 00 00 78', [16384, DATA, text('x')]],
  ['stream 2^30 CLOSE Read', 'c0 00 00 00 40 00 00 00 00 03 00', [2 ** 30, CLOSE, undefined, READ]],
  ['stream 1 ERROR Read code 2^30', '01 00 02 00 c0 00 00 00 40 00 00 00', [1, ERROR, undefined, 2 ** 30, READ]],
];

for (const [name, want, args] of vectors) {
  test(`encode: ${name}`, () => {
    assert.equal(hex(encode(...args)), want);
  });
  test(`decode: ${name}`, () => {
    const f = decode(bytes(want));
    assert.equal(f.id, args[0]);
    assert.equal(f.type, args[1]);
    if (args[1] === DATA) assert.deepEqual([...f.data], [...args[2]]);
    if (args[1] === ACK) assert.equal(f.n, args[3]);
    if (args[1] === CLOSE) assert.equal(f.half, args[3]);
    if (args[1] === ERROR) {
      assert.equal(f.n, args[3]);
      assert.equal(f.half, args[4]);
    }
  });
}

test('decode accepts non-minimal varints', () => {
  // Stream 3 in two bytes.
  assert.equal(decode(bytes('40 03 00 00 68')).id, 3);
});

test('decode refuses what is not a frame', () => {
  for (const [h, why] of [
    ['', 'truncated stream id'],
    ['40', 'truncated stream id'],
    ['00 00', 'truncated message type'],
    ['00 00 04', 'unknown message type 4'],
    ['00 00 01 00 00 01', 'truncated ack'],
    ['00 00 03', 'truncated close'],
    ['00 00 03 02', 'bad shutdown 2'],
    ['00 00 02 00', 'truncated error'],
    ['00 00 02 00 40', 'truncated error'],
  ]) {
    assert.throws(() => decode(bytes(h)), (e) => e === why, h);
  }
});

test('json: values back to back, split anywhere, whitespace between', () => {
  const input = text('{"a":1} {"b":"x}{\\"y"}\n[1,{"c":[2]}]{"d":"é"}');
  for (let cut = 0; cut <= input.length; cut++) {
    const r = new JsonReader(1 << 20);
    const out = [...r.feed(input.subarray(0, cut)), ...r.feed(input.subarray(cut))];
    assert.deepEqual(out, [{ a: 1 }, { b: 'x}{"y' }, [1, { c: [2] }], { d: 'é' }], `cut at ${cut}`);
    assert.equal(r.partial, false);
  }
});

test('json: stops after a limit and keeps the bytes after the value', () => {
  const r = new JsonReader(1 << 20);
  assert.deepEqual(r.feed(text('{"result":{"ok":true}}RAW {bytes'), 1), [{ result: { ok: true } }]);
  assert.equal(new TextDecoder().decode(r.rest), 'RAW {bytes');
});

test('json: errors carry JSON-RPC codes', () => {
  assert.throws(() => new JsonReader(100).feed(text('x')), { code: -32700 });
  assert.throws(() => new JsonReader(100).feed(text('{"a":tru}')), { code: -32700 });
  const r = new JsonReader(10);
  assert.throws(() => {
    r.feed(text('{"a":"0123'));
    r.feed(text('456789"}'));
  }, { code: -32003 });
});
