// Diagnostic: logs what js-quic asks of quiche for each stream of a
// connection (stream sends, shutdowns, capacity checks, the readable and
// writable iterators after each packet), as `trace <ms> <what>` lines.
// Used to see how a js-quic server learns of a peer's STOP_SENDING.
import { performance } from 'node:perf_hooks';

export function traceQuicConnection(quicConnection, print = (s) => console.log(s)) {
  const c = quicConnection.conn;
  const t0 = performance.now();
  const log = (s) => print(`trace ${(performance.now() - t0).toFixed(1)} ${s}`);
  const wrap = (name, show) => {
    const f = c[name].bind(c);
    c[name] = (...args) => {
      try {
        const r = f(...args);
        const s = show(args, r);
        if (s != null) log(`${name} ${s}`);
        return r;
      } catch (e) {
        log(`${name} ${args[0]} threw ${e.message}`);
        throw e;
      }
    };
  };
  wrap('streamSend', ([id, data, fin], r) => `${id} len=${data.byteLength} fin=${fin} -> ${r}`);
  wrap('streamShutdown', ([id, dir, code], r) => `${id} dir=${dir} code=${code} -> ${r}`);
  wrap('streamCapacity', ([id], r) => `${id} -> ${r}`);
  wrap('streamRecv', ([id], r) => `${id} -> ${JSON.stringify(r)}`);
  wrap('streamFinished', ([id], r) => `${id} -> ${r}`);
  // After each received datagram: the state of every stream seen so far, as
  // `streamCapacity` tells it (a number, StreamStopped(code) once the peer's
  // STOP_SENDING arrived, InvalidStreamState once quiche collected it).
  const seen = new Map();
  const capacity = c.streamCapacity.bind(c);
  const recv = c.recv.bind(c);
  c.recv = (data, info) => {
    const len = data.byteLength;
    const r = recv(data, info);
    const states = [];
    for (const [id, last] of seen) {
      let now;
      try {
        now = capacity(id) > 0 ? 'open' : 'full';
      } catch (e) {
        now = e.message;
      }
      if (now !== last) states.push(`${id}:${now}`);
      seen.set(id, now);
      if (now.startsWith('InvalidStreamState')) seen.delete(id);
    }
    log(`recv ${len} bytes ${states.join(' ')}`);
    return r;
  };
  const streamSendSeen = c.streamSend;
  c.streamSend = (id, ...rest) => {
    if (!seen.has(id)) seen.set(id, 'new');
    return streamSendSeen(id, ...rest);
  };
  for (const name of ['readable', 'writable']) {
    const f = c[name].bind(c);
    c[name] = () => {
      const ids = [...f()];
      if (ids.length > 0) log(`${name}() -> [${ids.join(',')}]`);
      return ids;
    };
  }
  quicConnection.addEventListener('EventQUICConnectionStream', (e) => {
    const stream = e.detail;
    for (const name of ['EventQUICStreamCloseRead', 'EventQUICStreamCloseWrite', 'EventQUICStreamError', 'EventQUICStreamDestroyed']) {
      stream.addEventListener(name, (ev) => log(`${stream.streamId} ${name} ${ev.detail?.constructor?.name ?? ''} ${ev.detail?.message ?? ''}`));
    }
  });
  return log;
}
