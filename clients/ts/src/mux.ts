// The client side of the stream multiplexer (docs/protocol.md, "WebSocket
// mux"), byte-compatible with strand servers and @matrixai/ws.
//
// Each stream is a pair of WHATWG streams. Credit is per stream, both ways:
// DATA never exceeds the credit the server granted (writes are split and
// wait at zero credit), and credit goes back to the server with ACK only as
// the application reads, so a reader that stops makes the server stop after
// one window. ACKs are batched: one goes out once the application read half
// the window since the last, otherwise one per stream per event-loop turn
// (a reader that keeps up would else send one ACK per DATA message).
//
// The client says nothing about its window at the upgrade (a browser cannot
// set request headers), so a strand server treats it as it treats a JS peer:
// opening ACKs both ways, CLOSE(Write) replies, every byte ACKed before a
// CLOSE.

import { ACK, CLOSE, DATA, ERROR, READ, WRITE, decode, encode, type Frame } from './wire.js';
import type { Carrier } from './carrier.js';
import { ConnectionError, StreamError } from './errors.js';

/** Stream states. Send: OPEN, FINISHING (waiting for every byte to be ACKed
 * before CLOSE), DONE. Receive: OPEN, FIN (the peer finished; queued data
 * still to read), DONE. */
const OPEN = 0;
const FINISHING = 1;
const FIN = 1;
const DONE = 2;

/** Stream error code for a refused stream (strand's `REFUSED`). */
const REFUSED = 4;

/** Per-stream figures, read from the client side. */
export interface StreamStats {
  /** The stream's id on the wire (a strand server's `stats` method reports
   * its side of the stream under the same id). */
  id: number;
  /** The window this client granted the server. */
  window: number;
  /** Bytes received on the stream so far. */
  received: number;
  /** Bytes received and not yet read by the application. */
  buffered: number;
  /** The most `buffered` has been. Never above `window`. */
  maxBuffered: number;
  /** Bytes the server may still send before the application reads more. */
  peerCredit: number;
  /** Bytes this client may still send. */
  credit: number;
  /** Bytes sent and not yet ACKed by the server. */
  inFlight: number;
}

export class Mux {
  carrier!: Carrier;
  streams = new Map<number, MuxStream>();
  /** Set once the connection closed: every stream fails with it. */
  error?: ConnectionError;
  closed: Promise<ConnectionError>;
  private onClosed!: (e: ConnectionError) => void;
  private nextId = 0;
  private highestPeer = -1;
  /** Called whenever a stream leaves the map (graceful close waits on it). */
  onRelease?: () => void;
  /** Streams with read bytes not yet ACKed, flushed on the next turn. */
  private ackDue = new Set<MuxStream>();
  private ackTimer?: ReturnType<typeof setTimeout>;

  constructor(readonly window: number, readonly maxPayload: number) {
    this.closed = new Promise((r) => (this.onClosed = r));
  }

  /** Opens a stream: its first message is ACK(window). */
  open(): MuxStream {
    if (this.error) throw this.error;
    const s = new MuxStream(this, this.nextId);
    this.nextId += 2;
    this.streams.set(s.id, s);
    this.send(encode(s.id, ACK, undefined, this.window));
    return s;
  }

  send(frame: Uint8Array) {
    if (!this.error) this.carrier.send(frame);
  }

  /** One WebSocket message from the server. */
  message(raw: ArrayBuffer | ArrayBufferView | string) {
    if (this.error) return;
    if (typeof raw === 'string') return this.close(1002, 'protocol error: text message');
    const buf = ArrayBuffer.isView(raw)
      ? new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength)
      : new Uint8Array(raw);
    let f: Frame;
    try {
      f = decode(buf);
    } catch (e) {
      return this.close(1002, `protocol error: ${e}`);
    }
    const s = this.streams.get(f.id);
    if (s) return s.frame(f);
    // Ours and gone, or a server stream id seen before: dropped. A server
    // stream opens with an ACK; a client serves no streams, so it refuses.
    if (f.id % 2 === 0 || f.id <= this.highestPeer) return;
    this.highestPeer = f.id;
    if (f.type === ACK) {
      this.send(encode(f.id, ERROR, undefined, REFUSED, READ));
      this.send(encode(f.id, ERROR, undefined, REFUSED, WRITE));
    }
  }

  /** Closes the WebSocket with `code` and fails every stream. */
  close(code: number, reason: string) {
    if (this.error) return;
    const error = new ConnectionError(code, reason, `connection closed locally (${code}${reason ? ` ${reason}` : ''})`);
    try {
      this.carrier?.close(code, reason.slice(0, 120));
    } catch {
      // Browsers let a page send only 1000 and 3000-4999: a protocol
      // error (1002) goes out as 4002.
      this.carrier?.close(code + 3000, reason.slice(0, 120));
    }
    this.end(error);
  }

  /** The socket closed (the server's close frame, or lost: 1006). */
  closedBy(code: number, reason: string) {
    if (this.error) return;
    const lost = code === 1006 || code === 1005;
    this.end(
      new ConnectionError(
        code,
        reason,
        lost
          ? `connection lost (${code}${reason ? ` ${reason}` : ''})`
          : `connection closed by the server (${code}${reason ? ` ${reason}` : ''})`,
      ),
    );
  }

  /** ACKs `s`'s read bytes on the next event-loop turn (a timer, not a
   * microtask: the reads of every message that arrived in this turn go out
   * as one ACK). */
  ackLater(s: MuxStream) {
    this.ackDue.add(s);
    this.ackTimer ??= setTimeout(() => {
      this.ackTimer = undefined;
      const due = [...this.ackDue];
      this.ackDue.clear();
      for (const d of due) d.flushAck();
    }, 0);
  }

  private end(error: ConnectionError) {
    this.error = error;
    clearTimeout(this.ackTimer);
    this.ackDue.clear();
    for (const s of this.streams.values()) s.fail(error);
    this.streams.clear();
    this.onRelease?.();
    this.onClosed(error);
  }

  release(s: MuxStream) {
    if (this.streams.get(s.id) === s) {
      this.streams.delete(s.id);
      this.onRelease?.();
    }
  }

  /** DATA beyond the granted window. */
  overrun() {
    this.close(1002, 'protocol error: data beyond the granted window');
  }
}

export class MuxStream {
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  private send = OPEN;
  private recv = OPEN;
  /** Why writes fail / why reads fail, once they do. */
  private sendErr?: Error;
  private recvErr?: Error;
  /** A stop with code 0 after every byte was written (a JS RPC server
   * stops reading once it has a unary request): not an error. */
  private benign = false;
  private credit = 0;
  private inFlight = 0;
  private queue: Uint8Array[] = [];
  private buffered = 0;
  private maxBuffered = 0;
  private received = 0;
  private peerCredit: number;
  /** Bytes the application read that were not ACKed yet. */
  private unacked = 0;
  private waiters: (() => void)[] = [];

  constructor(private mux: Mux, readonly id: number) {
    this.peerCredit = mux.window;
    this.readable = new ReadableStream<Uint8Array>(
      {
        pull: async (c) => {
          for (;;) {
            const chunk = this.queue.shift();
            if (chunk) {
              this.consumed(chunk.length);
              return c.enqueue(chunk);
            }
            if (this.recv === FIN) {
              this.recv = DONE;
              this.maybeRelease();
              return c.close();
            }
            if (this.recvErr) throw this.recvErr;
            await this.changed();
          }
        },
        cancel: () => this.stop(0),
      },
      // Nothing is read ahead of the application: unread bytes stay here,
      // unACKed.
      { highWaterMark: 0 },
    );
    this.writable = new WritableStream<Uint8Array>({
      write: (chunk) => this.write(chunk),
      close: () => this.finish(),
      abort: () => this.reset(0),
    });
  }

  stats(): StreamStats {
    const { buffered, maxBuffered, received, peerCredit, credit, inFlight } = this;
    return { id: this.id, window: this.mux.window, received, buffered, maxBuffered, peerCredit, credit, inFlight };
  }

  private changed(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }

  /** One frame for this stream (from [`Mux.message`]). */
  frame(f: Frame): void {
    const mux = this.mux;
    if (f.type === DATA) {
      // Data after our stop, or after the peer's own end, is dropped.
      if (this.recv !== OPEN) return;
      const n = f.data!.length;
      if (n > this.peerCredit) return mux.overrun();
      this.peerCredit -= n;
      this.received += n;
      if (n) {
        this.buffered += n;
        if (this.buffered > this.maxBuffered) this.maxBuffered = this.buffered;
        this.queue.push(f.data!);
      }
    } else if (f.type === ACK) {
      if (this.send === DONE) return;
      // The first ACK is the opening grant (nothing is in flight before it);
      // later ones return credit for bytes the server consumed.
      this.inFlight = Math.max(0, this.inFlight - f.n!);
      this.credit += f.n!;
    } else if (f.type === CLOSE) {
      if (f.half === READ) {
        // The server finished writing: EOF after the queued data, and the
        // reply every JS peer expects.
        if (this.recv !== OPEN) return;
        this.recv = FIN;
        mux.send(encode(this.id, CLOSE, undefined, WRITE));
      } else if (this.send !== DONE) {
        // The reply to our CLOSE(Read) is ignored; unsolicited, it is a
        // stop with code 0.
        return this.frame({ id: this.id, type: ERROR, half: WRITE, n: 0 });
      }
    } else if (f.half === READ) {
      // ERROR(Read): the server aborted its writing half.
      if (this.recv !== OPEN) return;
      this.recv = DONE;
      this.discard();
      this.recvErr = new StreamError('reset', f.n!);
      mux.send(encode(this.id, ERROR, undefined, f.n!, WRITE));
    } else {
      // ERROR(Write): the server stopped reading.
      if (this.send === DONE) return;
      this.benign = this.send === FINISHING && f.n === 0;
      this.send = DONE;
      this.sendErr = new StreamError('stopped', f.n!);
      mux.send(encode(this.id, ERROR, undefined, f.n!, READ));
    }
    this.wake();
    this.maybeRelease();
  }

  private discard() {
    this.queue = [];
    this.buffered = 0;
  }

  /** The application read `n` bytes: the credit goes back at once if half
   * the window is waiting for it, otherwise on the next turn. */
  private consumed(n: number) {
    this.buffered -= n;
    if (this.recv !== OPEN || this.mux.error) return;
    this.unacked += n;
    if (this.unacked >= this.mux.window / 2) this.flushAck();
    else this.mux.ackLater(this);
  }

  /** Sends the ACK for the bytes read so far, unless the server already
   * finished (an ACK then would re-create the stream on a JS peer). */
  flushAck() {
    const n = this.unacked;
    this.unacked = 0;
    if (n === 0 || this.recv !== OPEN || this.mux.error) return;
    this.peerCredit += n;
    this.mux.send(encode(this.id, ACK, undefined, n));
  }

  private async write(chunk: Uint8Array) {
    if (!(chunk instanceof Uint8Array)) {
      const c: any = chunk;
      chunk = ArrayBuffer.isView(c) ? new Uint8Array(c.buffer, c.byteOffset, c.byteLength) : new Uint8Array(c);
    }
    let off = 0;
    while (off < chunk.length) {
      if (this.sendErr) throw this.sendErr;
      if (this.send !== OPEN) throw new TypeError('stream closed for writing');
      if (this.credit === 0) {
        await this.changed();
        continue;
      }
      const ready = this.mux.carrier.ready();
      if (ready) {
        await ready;
        continue;
      }
      // Never more than the credit: a larger write goes out in pieces.
      const n = Math.min(this.credit, chunk.length - off, this.mux.maxPayload);
      this.credit -= n;
      this.inFlight += n;
      this.mux.send(encode(this.id, DATA, chunk.subarray(off, off + n)));
      off += n;
    }
  }

  /** Resolves once every byte written so far was ACKed (read by the server),
   * or the half ended. */
  async delivered() {
    while (this.inFlight > 0 && this.send !== DONE) await this.changed();
  }

  /** Graceful end of the writing half: CLOSE(Read) once every byte sent was
   * ACKed (a JS receiver loses data that a CLOSE overtakes). */
  private async finish() {
    if (this.send === OPEN) this.send = FINISHING;
    await this.delivered();
    if (this.sendErr && !this.benign) throw this.sendErr;
    if (this.send === FINISHING) {
      this.send = DONE;
      this.mux.send(encode(this.id, CLOSE, undefined, READ));
      this.maybeRelease();
    }
  }

  /** Aborts the writing half: ERROR(Read, code). */
  reset(code: number) {
    if (this.send === DONE) return;
    this.send = DONE;
    this.sendErr ??= new StreamError('reset', code, 'stream reset locally');
    this.mux.send(encode(this.id, ERROR, undefined, code, READ));
    this.wake();
    this.maybeRelease();
  }

  /** Stops reading: ERROR(Write, code), unless the server already finished. */
  stop(code: number) {
    if (this.recv === DONE) return;
    if (this.recv === OPEN) this.mux.send(encode(this.id, ERROR, undefined, code, WRITE));
    this.recv = DONE;
    this.discard();
    this.recvErr ??= new StreamError('stopped', code, 'stream stopped locally');
    this.wake();
    this.maybeRelease();
  }

  /** The connection ended: queued data can still be read, then the error. */
  fail(error: Error) {
    this.sendErr ??= error;
    this.recvErr ??= error;
    if (this.send !== DONE) this.send = DONE;
    this.wake();
  }

  /** Both halves done on the wire: nothing more is sent on the stream, and
   * whatever still arrives for it is dropped. */
  private maybeRelease() {
    if (this.send === DONE && this.recv !== OPEN) this.mux.release(this);
  }
}
