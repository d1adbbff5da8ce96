// The JSON-RPC client: one mux stream per call, five call kinds.

import { openWebSocket, openWebSocketStream, type WebSocketConstructor } from './carrier.js';
import { ConnectionError, RpcError, StreamError } from './errors.js';
import { JsonReader, toBytes } from './json.js';
import { Mux, type MuxStream, type StreamStats } from './mux.js';

export interface ConnectOptions {
  /** A WebSocket constructor. Default: the global `WebSocket`. In Node 20,
   * which has none, pass the `ws` package's. */
  WebSocket?: WebSocketConstructor;
  /** Use `WebSocketStream` (socket-level receive backpressure) where the
   * global exists; the plain `WebSocket` otherwise. Default false: Chromium
   * (156) can crash the page's renderer when a WebSocketStream's connection
   * drops while it is being written to (README, "Known issues"). */
  webSocketStream?: boolean;
  /** Receive window granted per stream, in bytes. Default 1 MiB. */
  window?: number;
  /** Largest DATA payload sent in one message. Default 64 KiB. */
  maxPayload?: number;
  /** Longest JSON message accepted from the server. Default 1 MiB. */
  maxMessageSize?: number;
  /** Bearer token sent with every call; replaced by a refreshed one when
   * the server hands one back. */
  token?: string;
  /** Called with each refreshed token. */
  onToken?: (token: string) => void;
  /** Timeout of every call that sets none, in milliseconds. */
  timeout?: number;
  /** Metadata sent with every call. */
  metadata?: Record<string, unknown>;
}

export interface CallOptions {
  /** Milliseconds: sent as `metadata.timeout` and enforced here (the call
   * then fails with RpcError -32008). For raw calls it covers the leading
   * response only. */
  timeout?: number;
  /** Aborting it cancels the call: the stream is reset, which cancels the
   * server's handler; the call fails with the signal's reason. */
  signal?: AbortSignal;
  /** Application metadata for this call, over the client's. */
  metadata?: Record<string, unknown>;
  /** This call's token instead of the client's (null: none). */
  token?: string | null;
}

/** A raw call after its leading response. */
export interface RawCall<T = any> {
  /** The leading JSON response. */
  result: T;
  /** `result.metadata` of the leading response. */
  metadata?: Record<string, unknown>;
  /** Bytes from the server. */
  readable: ReadableStream<Uint8Array>;
  /** Bytes to the server; close it to end them. */
  writable: WritableStream<Uint8Array>;
  /** The stream's flow-control figures. */
  stats(): StreamStats;
  /** Aborts the call both ways. */
  cancel(reason?: unknown): void;
}

/** A raw call whose bytes may go before its leading response arrives. */
export interface PipelinedRawCall<T = any> {
  /** Bytes to the server, writable at once; close it to end them. */
  writable: WritableStream<Uint8Array>;
  /** The leading response, then the server's bytes. Rejects with the
   * server's error if it refused the call (its writes then fail). */
  response: Promise<RawResponse<T>>;
  /** The stream's flow-control figures. */
  stats(): StreamStats;
  /** Aborts the call both ways. */
  cancel(reason?: unknown): void;
}

/** The leading response of a pipelined raw call and the server's bytes. */
export interface RawResponse<T = any> {
  /** The leading JSON response. */
  result: T;
  /** `result.metadata` of the leading response. */
  metadata?: Record<string, unknown>;
  /** Bytes from the server. */
  readable: ReadableStream<Uint8Array>;
}

const noop = () => {};
const isObject = (v: unknown): v is Record<string, any> => !!v && typeof v === 'object' && !Array.isArray(v);
const cancelled = () => new StreamError('stopped', 0, 'call cancelled');
const noResponse = () => new RpcError(-32007, 'the stream ended without a response');

/** Connects to a strand (or @matrixai/ws) server at a `ws://` or `wss://` URL. */
export async function connect(url: string, options: ConnectOptions = {}): Promise<Client> {
  const mux = new Mux(options.window ?? 1 << 20, options.maxPayload ?? 1 << 16);
  const sink = { message: mux.message.bind(mux), closed: mux.closedBy.bind(mux) };
  const g = globalThis as any;
  const useStream = !!options.webSocketStream && typeof g.WebSocketStream === 'function';
  const Ctor = options.WebSocket ?? g.WebSocket;
  if (!useStream && !Ctor) throw new TypeError('no WebSocket here: pass options.WebSocket');
  mux.carrier = useStream
    ? await openWebSocketStream(url, g.WebSocketStream, sink)
    : await openWebSocket(url, Ctor, sink);
  return new Client(mux, options, useStream ? 'WebSocketStream' : 'WebSocket');
}

export class Client {
  /** The bearer token sent with calls (refreshed from responses). */
  token?: string;
  /** Default call timeout, in milliseconds. */
  timeout?: number;
  /** Settles with the error every call fails with once the connection closed. */
  readonly closed: Promise<ConnectionError>;
  /** @internal */ closing = false;

  constructor(
    /** @internal */ readonly mux: Mux,
    /** @internal */ readonly options: ConnectOptions,
    /** Which socket API carries the connection. */
    readonly transport: 'WebSocketStream' | 'WebSocket',
  ) {
    this.token = options.token;
    this.timeout = options.timeout;
    this.closed = mux.closed;
  }

  /** @internal */
  refresh(token: string) {
    this.token = token;
    this.options.onToken?.(token);
  }

  /** One request, one response. */
  async unary<R = any>(method: string, params?: unknown, options?: CallOptions): Promise<R> {
    const call = new Call(this, method, options);
    // A server may answer without reading the request (one shutting down
    // answers -32001) and its stop can overtake our write: the answer then
    // says why, and the failed write is the error only without one.
    const refused = await call.send(params).then(noop, (e: Error) => e);
    // The end of our input; a stop after the request is benign, and any
    // other failure shows in the response.
    if (!refused) call.w.close().catch(noop);
    const m = await call.next().catch((e) => {
      throw refused && !(e instanceof RpcError) ? refused : e;
    });
    if (!m) throw call.fail(refused ?? noResponse());
    call.done();
    call.drain();
    return m.value as R;
  }

  /** One request, a stream of responses. */
  serverStream<R = any>(method: string, params?: unknown, options?: CallOptions): Responses<R> {
    const call = new Call(this, method, options);
    call.send(params).then(() => call.w.close()).catch(noop);
    return new Responses<R>(call);
  }

  /** Messages in (`write`, `writable`), one response out (`end()`, `result`). */
  clientStream<P = any, R = any>(method: string, options?: CallOptions): ClientStream<P, R> {
    return new ClientStream<P, R>(new Call(this, method, options));
  }

  /** Messages in (`write`, `writable`), messages out (iterate, `readable`). */
  duplex<P = any, R = any>(method: string, options?: CallOptions): Duplex<P, R> {
    return new Duplex<P, R>(new Call(this, method, options));
  }

  /** A JSON header, a leading JSON response, then raw bytes both ways.
   * Resolves once the leading response is in; `rawPipelined` lets the
   * bytes follow the header at once. */
  async raw<T = any>(method: string, params?: unknown, options?: CallOptions): Promise<RawCall<T>> {
    const call = await this.rawPipelined<T>(method, params, options);
    const { result, metadata, readable } = await call.response;
    return { result, metadata, readable, writable: call.writable, stats: call.stats, cancel: call.cancel };
  }

  /** A raw call whose bytes may be written before its leading response
   * arrives: resolves once the header is written (and, toward a JS server,
   * read), a round trip sooner than `raw` for a call that writes first. */
  async rawPipelined<T = any>(method: string, params?: unknown, options?: CallOptions): Promise<PipelinedRawCall<T>> {
    const call = new Call(this, method, options);
    const refused = await call.send(params, true).then(noop, (e: Error) => e);
    call.w.releaseLock();
    const response = (async (): Promise<RawResponse<T>> => {
      const m = await call.next(1).catch((e) => {
        throw refused && !(e instanceof RpcError) ? refused : e;
      });
      if (!m) throw call.fail(refused ?? noResponse());
      call.done(false);
      let rest = call.json.rest;
      const readable = new ReadableStream<Uint8Array>(
        {
          pull: async (c) => {
            if (rest?.length) {
              c.enqueue(rest);
              rest = undefined;
              return;
            }
            try {
              const r = await call.race(call.r.read());
              if (r.done) {
                call.done();
                c.close();
              } else c.enqueue(r.value);
            } catch (e) {
              throw call.fail(e);
            }
          },
          cancel: () => call.s.stop(0),
        },
        { highWaterMark: 0 },
      );
      return { result: m.value as T, metadata: call.metadata, readable };
    })();
    // Not an unhandled rejection when the caller only writes and cancels.
    response.catch(noop);
    return {
      writable: call.s.writable,
      response,
      stats: () => call.s.stats(),
      cancel: (reason) => call.abort(reason instanceof Error ? reason : cancelled()),
    };
  }

  /** Graceful close: no new calls; waits up to `grace` ms for the calls under
   * way to end, then closes the WebSocket with 1000. */
  async close(grace = 10_000): Promise<void> {
    this.closing = true;
    const mux = this.mux;
    if (!mux.error && mux.streams.size)
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, grace);
        mux.onRelease = () => {
          if (!mux.streams.size) {
            clearTimeout(t);
            resolve();
          }
        };
      });
    mux.close(1000, '');
  }
}

/** One call: its stream, deadline, cancellation, and message codec.
 * @internal */
export class Call {
  s: MuxStream;
  r: ReadableStreamDefaultReader<Uint8Array>;
  w: WritableStreamDefaultWriter<Uint8Array>;
  json: JsonReader;
  metadata?: Record<string, unknown>;
  private msgs: unknown[] = [];
  private answered = false;
  private sent = false;
  private err?: Error;
  private failed: Promise<never>;
  private reject!: (e: Error) => void;
  private timer?: ReturnType<typeof setTimeout>;
  private timeout?: number;
  private onAbort = () => {
    const reason = this.opts.signal!.reason;
    this.abort(reason instanceof Error ? reason : new DOMException(String(reason ?? 'aborted'), 'AbortError'));
  };

  constructor(
    private client: Client,
    private method: string,
    private opts: CallOptions = {},
  ) {
    if (client.closing) throw new ConnectionError(1000, '', 'the client is closing');
    this.s = client.mux.open();
    this.r = this.s.readable.getReader();
    this.w = this.s.writable.getWriter();
    this.w.closed.catch(noop);
    this.json = new JsonReader(client.options.maxMessageSize ?? 1 << 20);
    this.failed = new Promise<never>((_, reject) => (this.reject = reject));
    this.failed.catch(noop);
    const t = (this.timeout = opts.timeout ?? client.timeout);
    if (t != null) this.timer = setTimeout(() => this.abort(new RpcError(-32008, `call timed out after ${t} ms`)), t);
    const signal = opts.signal;
    if (signal?.aborted) this.onAbort();
    else signal?.addEventListener('abort', this.onAbort);
  }

  /** Settles with `p`, or fails first when the call is aborted or timed out. */
  race<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.failed]);
  }

  /** Ends the call both ways with `e` (timeout, abort): the stream is reset
   * and stopped, so the server cancels the handler. */
  abort(e: Error) {
    if (this.err) return;
    this.err = e;
    this.s.reset(0);
    this.s.stop(0);
    this.reject(e);
    this.done();
  }

  /** The error a failed read ends the call with. */
  fail(e: unknown): Error {
    if (this.err) return this.err;
    let err = e as Error;
    if (e instanceof StreamError && e.kind === 'reset' && !this.answered)
      err = new StreamError('reset', e.code, `the server reset the call without answering (code ${e.code}); is the method known to it?`);
    this.abort(err);
    return err;
  }

  /** Stops the timer (and with `all`, the abort signal's watch). */
  done(all = true) {
    clearTimeout(this.timer);
    if (all) this.opts.signal?.removeEventListener('abort', this.onAbort);
  }

  /** Reads the rest of the stream in the background, so that both halves
   * end cleanly. */
  drain() {
    (async () => {
      while (!(await this.r.read()).done);
    })().catch(noop);
  }

  /** Writes one request. The first carries the call's metadata and goes
   * alone: nothing more until the server read it (a JS server drops bytes
   * that follow a call's first message in the same read). */
  async send(params: unknown, raw = false) {
    const method = this.method;
    let bytes: Uint8Array;
    if (this.sent) bytes = toBytes({ method, jsonrpc: '2.0', id: null, params });
    else {
      const md: Record<string, unknown> = { ...this.client.options.metadata, ...this.opts.metadata };
      if (this.timeout != null) md.timeout = this.timeout;
      const token = this.opts.token !== undefined ? this.opts.token : this.client.token;
      if (token) md.authorization = `Bearer ${token}`;
      let p = params === undefined ? {} : params;
      if (isObject(p) && Object.keys(md).length) p = { ...p, metadata: { ...p.metadata, ...md } };
      bytes = toBytes(
        raw ? { jsonrpc: '2.0', method, params: p, id: null } : { method, jsonrpc: '2.0', id: null, params: p },
      );
    }
    const first = !this.sent;
    this.sent = true;
    try {
      await this.race(this.w.write(bytes));
      if (first) await this.race(this.s.delivered());
    } catch (e) {
      // The response (read separately) may say why.
      throw this.err ?? e;
    }
  }

  /** Ends the input. */
  async end() {
    if (!this.sent) throw new TypeError('a streaming call must send at least one message: the first one names the method');
    try {
      await this.race(this.w.close());
    } catch (e) {
      throw this.err ?? e;
    }
  }

  /** The next response's result; undefined at the end of the stream. A
   * JSON-RPC error answer throws RpcError. */
  async next(limit?: number): Promise<{ value: unknown } | undefined> {
    try {
      for (;;) {
        if (this.msgs.length) return { value: this.result(this.msgs.shift()) };
        const { value, done } = await this.race(this.r.read());
        if (done) {
          if (this.json.partial) throw new RpcError(-32700, 'stream ended inside a message');
          return undefined;
        }
        this.msgs.push(...this.json.feed(value, limit));
      }
    } catch (e) {
      throw this.fail(e);
    }
  }

  private result(msg: unknown): unknown {
    const first = !this.answered;
    this.answered = true;
    if (!isObject(msg)) throw new RpcError(-32600, 'invalid response: not an object');
    if (isObject(msg.error)) {
      const { code, message, data } = msg.error;
      const e = new RpcError(code, message, data);
      // The server's answer ends the call: our input is aborted, the rest of
      // its output read.
      this.err = e;
      this.done();
      this.s.reset(0);
      this.drain();
      throw e;
    }
    if (!('result' in msg)) throw new RpcError(-32600, 'invalid response: neither result nor error');
    const result = msg.result;
    if (first && isObject(result) && isObject(result.metadata)) {
      this.metadata = result.metadata;
      const auth = result.metadata.authorization;
      if (typeof auth === 'string' && auth.startsWith('Bearer ')) this.client.refresh(auth.slice(7));
    }
    return result;
  }
}

/** The responses of a call: an async iterable, or a ReadableStream of
 * results. Breaking out of the loop (or cancelling) cancels the call. */
export class Responses<R> implements AsyncIterable<R> {
  readonly readable: ReadableStream<R>;

  constructor(/** @internal */ protected call: Call) {
    this.readable = new ReadableStream<R>(
      {
        pull: async (c) => {
          const m = await call.next();
          if (m) c.enqueue(m.value as R);
          else {
            call.done();
            c.close();
          }
        },
        cancel: (reason) => call.abort(reason instanceof Error ? reason : cancelled()),
      },
      { highWaterMark: 0 },
    );
  }

  /** `result.metadata` of the first response, once it arrived. */
  get metadata() {
    return this.call.metadata;
  }

  /** Cancels the call. */
  cancel(reason?: unknown) {
    this.call.abort(reason instanceof Error ? reason : cancelled());
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<R, void, undefined> {
    const reader = this.readable.getReader();
    let finished = false;
    try {
      for (;;) {
        const r = await reader.read();
        if (r.done) {
          finished = true;
          return;
        }
        yield r.value;
      }
    } catch (e) {
      finished = true;
      throw e;
    } finally {
      if (!finished) await reader.cancel().catch(noop);
      reader.releaseLock();
    }
  }
}

const requests = <P>(call: Call) =>
  new WritableStream<P>({
    write: (m) => call.send(m),
    close: () => call.end(),
    abort: () => call.s.reset(0),
  });

/** A duplex call: write requests, read responses. */
export class Duplex<P, R> extends Responses<R> {
  readonly writable: WritableStream<P>;
  private writer?: WritableStreamDefaultWriter<P>;

  constructor(call: Call) {
    super(call);
    this.writable = requests<P>(call);
  }

  /** Sends one message (the first carries the call's metadata). */
  write(message: P): Promise<void> {
    return (this.writer ??= this.writable.getWriter()).write(message);
  }

  /** Ends the input. */
  end(): Promise<void> {
    return (this.writer ??= this.writable.getWriter()).close();
  }
}

/** A client-streaming call: write requests, then one response. */
export class ClientStream<P, R> {
  readonly writable: WritableStream<P>;
  /** The response; settles once the server answered. */
  readonly result: Promise<R>;
  private writer?: WritableStreamDefaultWriter<P>;

  constructor(private call: Call) {
    this.writable = requests<P>(call);
    this.result = (async () => {
      const m = await call.next();
      if (!m) throw call.fail(noResponse());
      call.done();
      call.drain();
      return m.value as R;
    })();
    this.result.catch(noop);
  }

  get metadata() {
    return this.call.metadata;
  }

  /** Sends one message (the first carries the call's metadata). */
  write(message: P): Promise<void> {
    return (this.writer ??= this.writable.getWriter()).write(message);
  }

  /** Ends the input and waits for the response. */
  async end(): Promise<R> {
    try {
      await (this.writer ??= this.writable.getWriter()).close();
    } catch (e) {
      // A server's answer explains a failed end better than the transport does.
      try {
        return await this.result;
      } catch (answer) {
        throw answer instanceof RpcError ? answer : e;
      }
    }
    return this.result;
  }

  /** Cancels the call. */
  cancel(reason?: unknown) {
    this.call.abort(reason instanceof Error ? reason : cancelled());
  }
}
