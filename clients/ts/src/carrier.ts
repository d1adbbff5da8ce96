// The WebSocket underneath the mux: the browser's `WebSocket` (or any
// constructor with its shape, such as the `ws` package's in Node), or
// `WebSocketStream` where the browser has it.

import { ConnectionError } from './errors.js';

/** What the mux needs from a socket. */
export interface Carrier {
  /** Queues one binary message. */
  send(message: Uint8Array): void;
  /** undefined while the socket takes more data; otherwise a promise that
   * settles once it drained (or closed). */
  ready(): Promise<unknown> | undefined;
  /** Starts the closing handshake. */
  close(code: number, reason: string): void;
}

/** Where a carrier reports what arrives. */
export interface Sink {
  message(data: ArrayBuffer | ArrayBufferView | string): void;
  closed(code: number, reason: string): void;
}

/** The part of the WebSocket API the client uses: the browser's
 * `WebSocket` has it, and so has the `ws` package's. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: any) => unknown) | null;
  onmessage: ((ev: any) => unknown) | null;
  onclose: ((ev: any) => unknown) | null;
  onerror: ((ev: any) => unknown) | null;
}

/** A WebSocket constructor: `WebSocket` in browsers, the `ws` package's in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Above this many queued bytes, DATA waits for the socket to drain. */
const HIGH = 1 << 20;

const failed = (url: string, code: number, reason: string) =>
  new ConnectionError(code, reason, `could not connect to ${url} (${code}${reason ? ` ${reason}` : ''})`);

/** Opens `url` with a WebSocket constructor. */
export function openWebSocket(url: string, Ctor: WebSocketConstructor, sink: Sink): Promise<Carrier> {
  return new Promise((resolve, reject) => {
    const ws = new Ctor(url);
    ws.binaryType = 'arraybuffer';
    let open = false;
    const carrier: Carrier = {
      send: (m) => ws.send(m),
      // The WebSocket API has no drain event: poll the queued bytes.
      ready: () =>
        ws.bufferedAmount < HIGH
          ? undefined
          : new Promise<void>((done) => {
              // Always after a timer: a closing socket must let its close
              // event through before the writer looks again.
              const poll = () =>
                ws.readyState !== 1 || ws.bufferedAmount < HIGH / 2 ? done() : setTimeout(poll, 5);
              setTimeout(poll, 5);
            }),
      close: (code, reason) => ws.close(code, reason),
    };
    ws.onopen = () => {
      open = true;
      resolve(carrier);
    };
    ws.onmessage = (ev) => sink.message(ev.data);
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (open) sink.closed(ev.code, ev.reason);
      else reject(failed(url, ev.code, ev.reason));
    };
  });
}

/** Opens `url` with `WebSocketStream`: reads are pulled, so a busy page
 * leaves the bytes in the socket instead of queueing events. */
export async function openWebSocketStream(url: string, Ctor: any, sink: Sink): Promise<Carrier> {
  const wss = new Ctor(url);
  let opened: { readable: ReadableStream; writable: WritableStream };
  try {
    opened = await wss.opened;
  } catch (e: any) {
    throw failed(url, e?.closeCode ?? 1006, e?.reason ?? '');
  }
  const writer = opened.writable.getWriter();
  const reader = opened.readable.getReader();
  writer.closed.catch(() => {});
  // `closed` may settle while messages still wait in the readable (a
  // stream's reset right before the server's close frame): the close is
  // reported once the read loop has handed every message over.
  const closed: Promise<[number, string]> = wss.closed.then(
    (c: any) => [c?.closeCode ?? 1005, c?.reason ?? ''],
    (e: any) => [e?.closeCode ?? 1006, e?.reason ?? e?.message ?? ''],
  );
  const reported = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        sink.message(value);
      }
    } catch {
      // The close is reported below.
    }
    const [code, reason] = await closed;
    sink.closed(code, reason);
  })();
  return {
    send: (m) => {
      writer.write(m).catch(() => {});
    },
    // An errored writer has no size: wait for the close to be reported.
    ready: () => {
      const room = writer.desiredSize;
      return room === null ? reported : room > 0 ? undefined : writer.ready.catch(() => reported);
    },
    close: (closeCode, reason) => wss.close({ closeCode, reason }),
  };
}
