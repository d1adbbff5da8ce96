// A real @matrixai/rpc 0.5.1 server over @matrixai/ws 1.1.7 (wss only), in
// the test's own process, after the patterns of tests/js/rpc-common.mjs.
//
// Methods: echo (params without metadata, plus echoed: true), whoami, count,
// sum ({v}), chat ({msg} -> {reply}), fail (throws TypeError), slow (waits
// for cancellation), hangStream (an item every 20 ms until cancelled),
// rawUpper, rawEcho. Every non-raw call needs `Bearer let-me-in` or
// `Bearer fresh-token`; the first response of each call hands back
// `Bearer fresh-token` (js-rpc runs no middleware on raw calls).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Logger, { LogLevel } from '@matrixai/logger';
import ws from '@matrixai/ws';
import rpc from '@matrixai/rpc';

const { RPCServer, middleware, UnaryHandler, ServerHandler, ClientHandler, DuplexHandler, RawHandler } = rpc;
const logger = new Logger('matrixai-server', LogLevel.ERROR);
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A self-signed certificate for 127.0.0.1 and localhost (openssl). */
export function selfSigned() {
  const dir = mkdtempSync(join(tmpdir(), 'strand-ts-cert-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2',
      '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ], { stdio: 'ignore' });
    return { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const withoutMetadata = ({ metadata, ...rest } = {}) => rest;

export async function startMatrixServer({ cert, key }) {
  const events = [];
  const untilAborted = (ctx, what) =>
    new Promise((_, reject) => {
      const t = setTimeout(() => reject(new Error(`${what} was never cancelled`)), 20_000);
      const onAbort = () => {
        clearTimeout(t);
        events.push(`cancelled ${what}`);
        reject(ctx.signal.reason ?? new Error('aborted'));
      };
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener('abort', onAbort, { once: true });
    });

  class Echo extends UnaryHandler {
    handle = async (input) => ({ ...withoutMetadata(input), echoed: true });
  }
  class WhoAmI extends UnaryHandler {
    handle = async () => ({ who: 'js' });
  }
  class Count extends ServerHandler {
    handle = async function* (input) {
      for (let i = 0; i < input.n; i++) yield { i };
    };
  }
  class Sum extends ClientHandler {
    handle = async (input) => {
      let sum = 0;
      for await (const m of input) sum += m.v;
      return { sum };
    };
  }
  class Chat extends DuplexHandler {
    handle = async function* (input) {
      for await (const m of input) yield { reply: `re:${m.msg}` };
    };
  }
  class Fail extends UnaryHandler {
    handle = async () => {
      throw new TypeError('handler exploded');
    };
  }
  class Slow extends UnaryHandler {
    handle = async (_input, _cancel, _meta, ctx) => {
      await untilAborted(ctx, 'slow');
      return {};
    };
  }
  class HangStream extends ServerHandler {
    handle = async function* (_input, _cancel, _meta, ctx) {
      let i = 0;
      try {
        while (!ctx.signal.aborted && i < 1000) {
          yield { i: i++ };
          await new Promise((r) => setTimeout(r, 20));
        }
      } finally {
        if (i < 1000) events.push('cancelled hangStream');
      }
    };
  }
  class RawUpper extends RawHandler {
    handle = async ([header, readable]) => {
      const upper = new TransformStream({
        transform(chunk, c) {
          c.enqueue(enc.encode(dec.decode(chunk).toUpperCase()));
        },
      });
      return [{ accepted: header.params.mode }, readable.pipeThrough(upper)];
    };
  }
  class RawEcho extends RawHandler {
    handle = async ([_header, readable]) => [{ echoing: true }, readable];
  }

  // Auth in the payload: the first message must carry a known token; the
  // first response hands back a fresh one.
  const auth = () => {
    let reverse;
    let first = true;
    let refreshed = false;
    return {
      forward: new TransformStream({
        transform(msg, c) {
          if (first) {
            first = false;
            const a = msg.params?.metadata?.authorization;
            if (a !== 'Bearer let-me-in' && a !== 'Bearer fresh-token') {
              reverse.enqueue({
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
        start(c) {
          reverse = c;
        },
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

  const rpcServer = new RPCServer({ middlewareFactory: middleware.defaultServerMiddlewareWrapper(auth), logger });
  rpcServer.addEventListener('error', () => {});
  await rpcServer.start({
    manifest: {
      echo: new Echo({}),
      whoami: new WhoAmI({}),
      count: new Count({}),
      sum: new Sum({}),
      chat: new Chat({}),
      fail: new Fail({}),
      slow: new Slow({}),
      hangStream: new HangStream({}),
      rawUpper: new RawUpper({}),
      rawEcho: new RawEcho({}),
    },
  });
  const server = new ws.WebSocketServer({ config: { key, cert, verifyPeer: false }, logger });
  server.addEventListener(ws.events.EventWebSocketServerConnection.name, (evt) => {
    evt.detail.addEventListener(ws.events.EventWebSocketConnectionStream.name, (e) => {
      const s = e.detail;
      rpcServer.handleStream({ readable: s.readable, writable: s.writable, cancel: (r) => s.cancel(r), meta: {} });
    });
  });
  await server.start({ host: '127.0.0.1', port: 0 });
  return {
    url: `wss://127.0.0.1:${server.port}`,
    events,
    async stop() {
      await server.stop({ force: true });
      await rpcServer.stop({ force: true });
    },
  };
}
