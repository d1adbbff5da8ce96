// A real @matrixai/rpc server on @matrixai/ws or @matrixai/quic, for strand
// clients. Every call needs `Bearer let-me-in` (raw calls aside: js-rpc runs
// no middleware on them) and the first response hands back `fresh-token`.
//
// usage: node rpc-server.mjs <ws|quic>; reads one JSON line on stdin:
// {"cert": PEM, "key": PEM}. Prints `listening <port>`, then
// `cancelled <method>` whenever a handler sees its call cancelled. Exits when
// stdin closes, or after 120 s.
import { createInterface } from 'node:readline';
import { exitAfter, listen, makeServer, serverManifest } from './rpc-common.mjs';
import { traceQuicConnection } from './quic-cancel-trace.mjs';

exitAfter(120_000);
const [carrier] = process.argv.slice(2);
const lines = createInterface({ input: process.stdin });
const first = await new Promise((resolve) => lines.once('line', resolve));
const identity = JSON.parse(first);
lines.on('close', () => process.exit(0));

const rpcServer = makeServer({ auth: true });
await rpcServer.start({ manifest: serverManifest() });
// QUIC_TRACE=1 prints `trace ...` lines of what js-quic does per stream.
const onQuicConnection = process.env.QUIC_TRACE ? (c) => traceQuicConnection(c) : undefined;
const port = await listen(carrier, rpcServer, identity, { onQuicConnection });
console.log(`listening ${port}`);
