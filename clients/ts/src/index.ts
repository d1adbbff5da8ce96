// @strand-rpc/client: strand's JSON-RPC calls over a multiplexed WebSocket,
// for browsers (WebSocket, WebSocketStream) and Node (pass a WebSocket
// constructor). No runtime dependencies.

export { connect, Client, Responses, Duplex, ClientStream } from './client.js';
export type { ConnectOptions, CallOptions, RawCall, PipelinedRawCall, RawResponse } from './client.js';
export { RpcError, ConnectionError, StreamError, codes } from './errors.js';
export type { StreamStats } from './mux.js';
export type { WebSocketConstructor, WebSocketLike } from './carrier.js';
