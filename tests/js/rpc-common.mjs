// Shared pieces of the JSON-RPC interop scripts: the two carriers
// (@matrixai/ws and @matrixai/quic) as RPC stream sources, the test
// service as @matrixai/rpc handlers, and the in-payload auth middleware.
import { webcrypto } from 'node:crypto';
import Logger, { LogLevel } from '@matrixai/logger';
import ws from '@matrixai/ws';
import { QUICServer, QUICClient, events as quicEvents } from '@matrixai/quic';
import rpc from '@matrixai/rpc';

const {
  RPCServer, RPCClient, middleware,
  UnaryHandler, ServerHandler, ClientHandler, DuplexHandler, RawHandler,
  UnaryCaller, ServerCaller, ClientCaller, DuplexCaller, RawCaller,
} = rpc;

export const logger = new Logger('rpc-interop', LogLevel.ERROR);

// Every script ends by itself: a peer that hangs must not hang the test.
export function exitAfter(ms) {
  setTimeout(() => {
    console.log('fail timeout');
    process.exit(2);
  }, ms).unref();
}

function rpcStream(s) {
  return { readable: s.readable, writable: s.writable, cancel: (r) => s.cancel(r), meta: {} };
}

async function quicServerCrypto() {
  const alg = { name: 'HMAC', hash: 'SHA-256' };
  const key = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const raw = await webcrypto.subtle.exportKey('raw', key);
  const importKey = (k) => webcrypto.subtle.importKey('raw', k, alg, true, ['sign', 'verify']);
  return {
    key: raw,
    ops: {
      async sign(k, data) { return webcrypto.subtle.sign('HMAC', await importKey(k), data); },
      async verify(k, data, sig) { return webcrypto.subtle.verify('HMAC', await importKey(k), sig, data); },
    },
  };
}

const quicClientCrypto = {
  ops: { async randomBytes(data) { webcrypto.getRandomValues(new Uint8Array(data)); } },
};

// Short idle timeouts: the keep-alive case checks that strand's pings keep
// the connection up past them.
export const IDLE_MS = 2000;

// Serves `rpcServer` on a carrier; resolves with the port. `onQuicConnection`
// (optional) sees each js-quic connection first (quic-cancel-trace.mjs).
export async function listen(carrier, rpcServer, { cert, key }, { onQuicConnection } = {}) {
  if (carrier === 'ws') {
    const server = new ws.WebSocketServer({
      config: { key, cert, verifyPeer: false, keepAliveTimeoutTime: IDLE_MS, keepAliveIntervalTime: 10_000 },
      logger,
    });
    server.addEventListener(ws.events.EventWebSocketServerConnection.name, (evt) => {
      const conn = evt.detail;
      conn.addEventListener(ws.events.EventWebSocketConnectionStream.name, (e) => {
        rpcServer.handleStream(rpcStream(e.detail));
      });
    });
    await server.start({ host: '127.0.0.1', port: 0 });
    return server.port;
  }
  const server = new QUICServer({
    crypto: await quicServerCrypto(),
    config: { cert, key, verifyPeer: false, maxIdleTimeout: IDLE_MS },
    logger,
  });
  server.addEventListener(quicEvents.EventQUICServerConnection.name, (evt) => {
    const conn = evt.detail;
    onQuicConnection?.(conn);
    conn.addEventListener(quicEvents.EventQUICConnectionStream.name, (e) => {
      // Logged so a test can tell that a reset or stop did arrive.
      e.detail.addEventListener(quicEvents.EventQUICStreamError.name, (ev) => {
        console.log(`stream-error ${ev.detail?.message}`);
      });
      rpcServer.handleStream(rpcStream(e.detail));
    });
  });
  await server.start({ host: '127.0.0.1', port: 0 });
  return server.port;
}

// Connects to a strand server; resolves with { streamFactory, close }.
export async function dial(carrier, port, { ca }) {
  if (carrier === 'ws') {
    const client = await ws.WebSocketClient.createWebSocketClient({
      host: '127.0.0.1',
      port,
      config: { ca, verifyPeer: true, keepAliveTimeoutTime: IDLE_MS, keepAliveIntervalTime: 10_000 },
      logger,
    });
    return {
      streamFactory: async () => rpcStream(await client.connection.newStream()),
      close: () => client.destroy({ force: false }),
      connection: client.connection,
    };
  }
  const client = await QUICClient.createQUICClient({
    host: '127.0.0.1',
    port,
    serverName: 'localhost',
    crypto: quicClientCrypto,
    config: { ca, verifyPeer: true, maxIdleTimeout: IDLE_MS },
    logger,
  });
  return {
    streamFactory: async () => rpcStream(client.connection.newStream()),
    close: () => client.destroy({ isApp: true, errorCode: 0 }),
    connection: client.connection,
  };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

function withoutMetadata(params) {
  const { metadata, ...rest } = params ?? {};
  return rest;
}

// Resolves when ctx.signal aborts (logging `cancelled <what>`), or rejects
// after `ms` so nothing waits for ever.
function untilAborted(ctx, what, ms = 20_000) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what} was never cancelled`)), ms);
    const onAbort = () => {
      clearTimeout(t);
      console.log(`cancelled ${what}`);
      reject(ctx.signal.reason ?? new Error('aborted'));
    };
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
}

class Echo extends UnaryHandler {
  handle = async (input) => ({ ...withoutMetadata(input), echoed: true });
}
class WhoAmI extends UnaryHandler {
  handle = async (_input, _cancel, meta) => ({ identity: meta?.identity ?? null });
}
class Count extends ServerHandler {
  handle = async function* (input) {
    for (let i = 0; i < input.n; i++) yield { i };
  };
}
class Sum extends ClientHandler {
  handle = async (input) => {
    let sum = 0;
    for await (const m of input) sum += m.x;
    return { sum };
  };
}
// Replies to each message; logs `cancelled hangDuplex` when its input fails
// (the caller reset the stream) instead of ending.
class HangDuplex extends DuplexHandler {
  handle = async function* (input) {
    let ended = false;
    try {
      for await (const m of input) yield { reply: m.msg };
      ended = true;
    } finally {
      if (!ended) console.log('cancelled hangDuplex');
    }
  };
}
class Chat extends DuplexHandler {
  handle = async function* (input) {
    for await (const m of input) yield { reply: `re:${m.msg}` };
  };
}
class Fail extends UnaryHandler {
  handle = async () => {
    const e = new TypeError('handler exploded');
    throw e;
  };
}
class Slow extends UnaryHandler {
  handle = async (_input, _cancel, _meta, ctx) => {
    await untilAborted(ctx, 'slow');
    return {};
  };
}
// Streams an item every 50 ms for up to 20 s. A peer that cancels is only
// noticed at the next write (js-quic learns of STOP_SENDING when it writes),
// so the handler keeps writing; it logs `cancelled hangStream` when stopped
// early.
class HangStream extends ServerHandler {
  handle = async function* (_input, _cancel, _meta, ctx) {
    let i = 0;
    try {
      while (!ctx.signal.aborted && i < 400) {
        yield { i: i++ };
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      if (i < 400) console.log('cancelled hangStream');
    }
  };
}
class RawUpper extends RawHandler {
  handle = async ([header, readable]) => {
    const upper = new TransformStream({
      transform(chunk, c) { c.enqueue(enc.encode(dec.decode(chunk).toUpperCase())); },
    });
    return [{ accepted: header.params }, readable.pipeThrough(upper)];
  };
}
class RawEcho extends RawHandler {
  handle = async ([_header, readable]) => [{ echoing: true }, readable];
}

export function serverManifest() {
  return {
    echo: new Echo({}),
    whoami: new WhoAmI({}),
    count: new Count({}),
    sum: new Sum({}),
    chat: new Chat({}),
    fail: new Fail({}),
    slow: new Slow({}),
    hangStream: new HangStream({}),
    hangDuplex: new HangDuplex({}),
    rawUpper: new RawUpper({}),
    rawEcho: new RawEcho({}),
  };
}

export function clientManifest() {
  return {
    echo: new UnaryCaller(),
    whoami: new UnaryCaller(),
    nope: new UnaryCaller(),
    count: new ServerCaller(),
    sum: new ClientCaller(),
    chat: new DuplexCaller(),
    fail: new UnaryCaller(),
    slow: new UnaryCaller(),
    nap: new UnaryCaller(),
    hang: new UnaryCaller(),
    hangStream: new ServerCaller(),
    rawUpper: new RawCaller(),
    rawEcho: new RawCaller(),
  };
}

// Server auth: the first message must carry `Bearer let-me-in`; the first
// response hands back `Bearer fresh-token`. A bad token is answered with an
// error message, as the capture's harness does.
function serverAuth() {
  return () => {
    let reverseController;
    let first = true;
    let refreshed = false;
    return {
      forward: new TransformStream({
        transform(msg, c) {
          if (first) {
            first = false;
            const auth = msg.params?.metadata?.authorization;
            if (auth !== 'Bearer let-me-in') {
              reverseController.enqueue({
                jsonrpc: '2.0',
                id: null,
                error: { code: -32001, message: 'unauthorised', data: { type: 'ErrorAuth', message: 'bad token', data: {} } },
              });
              c.error(new Error('bad token'));
              return;
            }
          }
          c.enqueue(msg);
        },
      }),
      reverse: new TransformStream({
        start(c) { reverseController = c; },
        transform(msg, c) {
          if (!refreshed && 'result' in msg && msg.result !== null && typeof msg.result === 'object') {
            refreshed = true;
            msg.result.metadata = { ...(msg.result.metadata ?? {}), authorization: 'Bearer fresh-token' };
          }
          c.enqueue(msg);
        },
      }),
    };
  };
}

export function makeServer({ auth }) {
  const server = new RPCServer({
    middlewareFactory: middleware.defaultServerMiddlewareWrapper(auth ? serverAuth() : undefined),
    logger,
  });
  // RPC_DEBUG=1 prints the server's error events (they are expected for cancelled calls).
  server.addEventListener('error', (e) => {
    if (process.env.RPC_DEBUG) console.log(`server-error ${e.detail?.message} ${e.detail?.cause?.message ?? ''}`);
  });
  return server;
}

// Client auth: sends `token.value` with the first message of every call and
// keeps the token the server hands back in `result.metadata.authorization`.
function clientAuth(token) {
  return () => {
    let first = true;
    let sawResult = false;
    return {
      forward: new TransformStream({
        transform(msg, c) {
          if (first && token.value != null) {
            msg.params = msg.params ?? {};
            msg.params.metadata = { ...(msg.params.metadata ?? {}), authorization: `Bearer ${token.value}` };
          }
          first = false;
          c.enqueue(msg);
        },
      }),
      reverse: new TransformStream({
        transform(msg, c) {
          if (!sawResult && 'result' in msg) {
            sawResult = true;
            const a = msg.result?.metadata?.authorization;
            if (typeof a === 'string' && a.startsWith('Bearer ')) token.refreshed = a.slice(7);
          }
          c.enqueue(msg);
        },
      }),
    };
  };
}

export function makeClient(streamFactory, token) {
  return new RPCClient({
    manifest: clientManifest(),
    streamFactory,
    middlewareFactory: middleware.defaultClientMiddlewareWrapper(clientAuth(token)),
    logger,
  });
}
