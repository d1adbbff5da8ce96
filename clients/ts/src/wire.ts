// The mux wire format (docs/protocol.md, "WebSocket mux"): one binary
// WebSocket message is one frame,
//
//   streamId: varint | type: u16 big-endian | payload
//
// DATA (0): the rest of the message; ACK (1): u32 credit; ERROR (2): u8
// shutdown, varint code; CLOSE (3): u8 shutdown. Shutdown names the half the
// *receiver* must shut: 0 = Read, 1 = Write.

export const DATA = 0;
export const ACK = 1;
export const ERROR = 2;
export const CLOSE = 3;
export const READ = 0;
export const WRITE = 1;

/** A decoded frame. `data` for DATA, `n` for ACK (credit) and ERROR (code),
 * `half` for ERROR and CLOSE. */
export interface Frame {
  id: number;
  type: number;
  data?: Uint8Array;
  n?: number;
  half?: number;
}

/** Bytes a varint takes (QUIC, RFC 9000 section 16), shortest form. */
export function varintLen(n: number): number {
  return n < 64 ? 1 : n < 16384 ? 2 : n < 2 ** 30 ? 4 : 8;
}

/** Writes `n` as a varint at `off`; returns the offset after it. */
export function putVarint(buf: Uint8Array, off: number, n: number): number {
  const len = varintLen(n);
  // Byte by byte from the end: numbers past 2^32 do not fit bit operations.
  for (let i = len - 1; i >= 0; i--) {
    buf[off + i] = n % 256;
    n = Math.floor(n / 256);
  }
  buf[off] |= [0, 0x40, 0, 0x80, 0, 0, 0, 0xc0][len - 1];
  return off + len;
}

/** Reads a varint at `off`: [value, offset after it], or undefined when the
 * buffer ends inside it. Non-minimal forms are accepted. */
export function getVarint(buf: Uint8Array, off: number): [number, number] | undefined {
  if (off >= buf.length) return undefined;
  const len = 1 << (buf[off] >> 6);
  if (off + len > buf.length) return undefined;
  let n = buf[off] & 0x3f;
  for (let i = 1; i < len; i++) n = n * 256 + buf[off + i];
  return [n, off + len];
}

/** Encodes one frame. `x` is the ACK credit, the ERROR code or the CLOSE half;
 * ERROR takes its half in `half`. */
export function encode(id: number, type: number, data?: Uint8Array, x = 0, half = 0): Uint8Array {
  const idLen = varintLen(id);
  const body =
    type === DATA ? data!.length : type === ACK ? 4 : type === ERROR ? 1 + varintLen(x) : 1;
  const buf = new Uint8Array(idLen + 2 + body);
  let off = putVarint(buf, 0, id) + 2;
  buf[off - 1] = type;
  if (type === DATA) buf.set(data!, off);
  else if (type === ACK) new DataView(buf.buffer).setUint32(off, x);
  else if (type === ERROR) {
    buf[off] = half;
    putVarint(buf, off + 1, x);
  } else buf[off] = x;
  return buf;
}

/** Decodes one message; throws a string saying why it is not a frame (a
 * protocol error: the connection closes with 1002). */
export function decode(buf: Uint8Array): Frame {
  const v = getVarint(buf, 0);
  if (!v) throw 'truncated stream id';
  const [id, off] = v;
  if (off + 2 > buf.length) throw 'truncated message type';
  const type = buf[off] * 256 + buf[off + 1];
  const p = off + 2;
  const rest = buf.length - p;
  if (type === DATA) return { id, type, data: buf.subarray(p) };
  if (type === ACK) {
    if (rest < 4) throw 'truncated ack';
    return { id, type, n: new DataView(buf.buffer, buf.byteOffset + p, 4).getUint32(0) };
  }
  if (type !== ERROR && type !== CLOSE) throw `unknown message type ${type}`;
  if (rest < 1) throw type === ERROR ? 'truncated error' : 'truncated close';
  const half = buf[p];
  if (half > 1) throw `bad shutdown ${half}`;
  if (type === CLOSE) return { id, type, half };
  const code = getVarint(buf, p + 1);
  if (!code) throw 'truncated error';
  return { id, type, half, n: code[0] };
}
