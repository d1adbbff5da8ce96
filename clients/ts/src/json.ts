// JSON-RPC framing (docs/protocol.md, "JSON-RPC on a duplex stream"): JSON
// values back to back, no delimiter, no length prefix. The reader finds where
// each value ends by its nesting depth, strings and escapes, looking at each
// byte once however the bytes are chunked.

import { RpcError } from './errors.js';

const decoder = new TextDecoder();
const encoder = new TextEncoder();

export const toBytes = (value: unknown) => encoder.encode(JSON.stringify(value));

export class JsonReader {
  private parts: Uint8Array[] = [];
  private size = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** Bytes after the last value taken, when `feed` stopped at its limit. */
  rest?: Uint8Array;

  constructor(private max: number) {}

  /** Whether a value has started and not ended. */
  get partial() {
    return this.depth > 0;
  }

  /** Scans `chunk`; returns the values it completes. Stops after `limit`
   * values and keeps the bytes after them in `rest`. */
  feed(chunk: Uint8Array, limit = Infinity): unknown[] {
    const out: unknown[] = [];
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i];
      if (this.depth === 0) {
        // Between values: whitespace, then `{` or `[`.
        if (b === 32 || b === 9 || b === 10 || b === 13) continue;
        if (b !== 123 && b !== 91)
          throw new RpcError(-32700, `invalid JSON: unexpected byte 0x${b.toString(16)} at the start of a message`);
        this.depth = 1;
        start = i;
      } else if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === 92) this.escaped = true;
        else if (b === 34) this.inString = false;
      } else if (b === 34) this.inString = true;
      else if (b === 123 || b === 91) this.depth++;
      else if ((b === 125 || b === 93) && --this.depth === 0) {
        out.push(this.take(chunk.subarray(start, i + 1)));
        if (out.length >= limit) {
          this.rest = chunk.subarray(i + 1);
          return out;
        }
      }
    }
    if (this.depth > 0) this.add(chunk.subarray(start));
    return out;
  }

  private add(part: Uint8Array) {
    this.parts.push(part);
    this.size += part.length;
    if (this.size > this.max) throw new RpcError(-32003, `message longer than the limit of ${this.max} bytes`);
  }

  private take(last: Uint8Array): unknown {
    this.add(last);
    let bytes = last;
    if (this.parts.length > 1) {
      bytes = new Uint8Array(this.size);
      let off = 0;
      for (const p of this.parts) {
        bytes.set(p, off);
        off += p.length;
      }
    }
    this.parts = [];
    this.size = 0;
    try {
      return JSON.parse(decoder.decode(bytes));
    } catch (e) {
      throw new RpcError(-32700, `invalid JSON: ${(e as Error).message}`);
    }
  }
}
