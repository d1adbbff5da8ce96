// A real @matrixai/rpc server over @matrixai/ws (wss) or @matrixai/quic for
// the `strand call` interop test.
//
// usage: node cli-rpc-server.mjs [ws|quic]   (default ws) Methods: echo (unary, params without metadata), count
// (server streaming, {n} -> {i}...), sum (client streaming, {x}... -> {sum}),
// chat (duplex, echoes each message without metadata), upper (raw: leading
// {ok: true}, then the input bytes uppercased).
//
// Reads one JSON line on stdin: {"cert": PEM, "key": PEM}. Prints
// `listening <port>`. Exits by itself after 60 s or when stdin closes.
import { createInterface } from 'node:readline';
import Logger, { LogLevel } from '@matrixai/logger';
import ws from '@matrixai/ws';
import rpc from '@matrixai/rpc';
import { QUICServer, events as quicEvents } from '@matrixai/quic';
import { serverCrypto } from './quic-common.mjs';

const { WebSocketServer, events } = ws;
const { RPCServer, UnaryHandler, ServerHandler, ClientHandler, DuplexHandler, RawHandler } = rpc;

const lines = createInterface({ input: process.stdin });
const first = await new Promise((resolve) => lines.once('line', resolve));
const { cert, key } = JSON.parse(first);
lines.on('close', () => process.exit(0));
setTimeout(() => process.exit(0), 60_000).unref();

const withoutMetadata = (params) => {
  const { metadata, ...rest } = params ?? {};
  return rest;
};

class Echo extends UnaryHandler {
  handle = async (input) => withoutMetadata(input);
}
class Count extends ServerHandler {
  handle = async function* (input) {
    for (let i = 0; i < input.n; i++) yield { i };
  };
}
class Sum extends ClientHandler {
  handle = async (input) => {
    let sum = 0;
    for await (const message of input) sum += message.x;
    return { sum };
  };
}
class Chat extends DuplexHandler {
  handle = async function* (input) {
    for await (const message of input) yield withoutMetadata(message);
  };
}

class Upper extends RawHandler {
  handle = async ([_header, input]) => {
    const upper = new TransformStream({
      transform(chunk, controller) {
        controller.enqueue(new TextEncoder().encode(new TextDecoder().decode(chunk).toUpperCase()));
      },
    });
    return [{ ok: true }, input.pipeThrough(upper)];
  };
}

const logger = new Logger('cli-rpc-server', LogLevel.WARN);
const rpcServer = new RPCServer({ logger });
await rpcServer.start({
  manifest: {
    echo: new Echo({}),
    count: new Count({}),
    sum: new Sum({}),
    chat: new Chat({}),
    upper: new Upper({}),
  },
});

// One RPC stream per transport stream.
const serve = (stream) =>
  rpcServer.handleStream({
    readable: stream.readable,
    writable: stream.writable,
    cancel: (reason) => stream.cancel(reason),
    meta: {},
  });

if (process.argv[2] === 'quic') {
  const server = new QUICServer({
    crypto: await serverCrypto(),
    config: { cert, key, verifyPeer: false },
    logger,
  });
  server.addEventListener(quicEvents.EventQUICServerConnection.name, (evt) => {
    const conn = evt.detail;
    conn.addEventListener(quicEvents.EventQUICConnectionStream.name, (e) => serve(e.detail));
  });
  await server.start({ host: '127.0.0.1', port: 0 });
  console.log(`listening ${server.port}`);
} else {
  const server = new WebSocketServer({
    config: { key, cert, verifyPeer: false },
    logger,
  });
  server.addEventListener(events.EventWebSocketServerConnection.name, (evt) => {
    const conn = evt.detail;
    conn.addEventListener(events.EventWebSocketConnectionStream.name, (e) => serve(e.detail));
  });
  await server.start({ host: '127.0.0.1', port: 0 });
  console.log(`listening ${server.port}`);
}
