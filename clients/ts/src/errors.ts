// The errors a call can fail with.

/** A JSON-RPC error: one the server answered with (`code`, `message`, `data`
 * as on the wire), or a call that timed out (-32008) here. */
export class RpcError extends Error {
  /** JSON-RPC error code, e.g. -32601 (method not found), -32006 (handler
   * error), -32008 (timed out). */
  readonly code: number;
  /** The error's `data`: `{type, message, data}` for handler errors,
   * `{code, message, data}` for protocol errors. */
  readonly data: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.data = data;
  }
}

/** The WebSocket closed or broke: every call on it fails with this. `code`
 * is the WebSocket close code (1000 normal, 1001 going away, 1002 protocol
 * error, 1006 lost without a close frame, ...). */
export class ConnectionError extends Error {
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string, message?: string) {
    super(message ?? `connection closed (${code}${reason ? ` ${reason}` : ''})`);
    this.name = 'ConnectionError';
    this.code = code;
    this.reason = reason;
  }
}

/** The peer aborted one half of a call's stream: `reset` (it stopped
 * writing, ERROR(Read)) or `stopped` (it stopped reading, ERROR(Write)),
 * with its application code. */
export class StreamError extends Error {
  readonly code: number;
  readonly kind: 'reset' | 'stopped';
  constructor(kind: 'reset' | 'stopped', code: number, message?: string) {
    super(message ?? `stream ${kind} by the peer (code ${code})`);
    this.name = 'StreamError';
    this.kind = kind;
    this.code = code;
  }
}

/** JSON-RPC error codes used by strand and @matrixai/rpc. */
export const codes = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  serverStopping: -32001,
  messageTooLong: -32003,
  handlerError: -32006,
  streamEnded: -32007,
  timedOut: -32008,
  handlerAborted: -32015,
  unauthorized: -32020,
} as const;
