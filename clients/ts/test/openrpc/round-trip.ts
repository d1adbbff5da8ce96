// Calls every method of the demo service through the generated client
// (examples/demo-client.ts), typed: this file compiles under `tsc --strict`
// only if the generated signatures match what the service sends and wants.
import type { Client } from '@strand-rpc/client';
import { StrandDemoClient, methods } from '../../examples/demo-client.js';

export async function roundTrip(client: Client) {
  const demo = new StrandDemoClient(client);
  const echo = await demo.echo({ hello: 'world' });

  const counted: number[] = [];
  for await (const item of demo.count({ n: 3 })) counted.push(item.i);

  const sum = demo.sum();
  await sum.write({ x: 1 });
  await sum.write({ x: 2.5 });
  const total: number = (await sum.end()).sum;

  const chat = demo.chat();
  await chat.write({ msg: 'hi' });
  let reply: unknown = null;
  for await (const r of chat) {
    reply = r;
    break;
  }

  const raw = await demo.upper({});
  const ok: boolean = raw.result.ok;
  const writer = raw.writable.getWriter();
  await writer.write(new TextEncoder().encode('bytes'));
  await writer.close();
  let text = '';
  const reader = raw.readable.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }

  // Pipelined: the bytes go before the leading response is read.
  const early = await demo.upperPipelined({});
  const earlyWriter = early.writable.getWriter();
  await earlyWriter.write(new TextEncoder().encode('early'));
  await earlyWriter.close();
  const response = await early.response;
  const earlyOk: boolean = response.result.ok;
  let earlyText = '';
  const earlyReader = response.readable.getReader();
  for (;;) {
    const { value, done } = await earlyReader.read();
    if (done) break;
    earlyText += new TextDecoder().decode(value);
  }

  const who = await demo.whoami({});
  const slept: number = (await demo.sleep({ ms: 1 })).slept;
  const transport: string = (await demo.stats({})).transport;
  const kinds: string[] = Object.values(methods);
  return { echo, counted, total, reply, ok, text, earlyOk, earlyText, who: who === null ? null : who.name, slept, transport, kinds };
}

// Never called: each line must fail to type-check, or tsc fails on the
// unused `@ts-expect-error`.
export function typeErrors(demo: StrandDemoClient) {
  // @ts-expect-error `n` is a number
  void demo.count({ n: 'three' });
  // @ts-expect-error `ms` is required
  void demo.sleep({});
  // @ts-expect-error a client-streaming call takes its messages later
  void demo.sum({ x: 1 });
  return async () => {
    // @ts-expect-error `sum` answers a number
    const s: string = (await demo.sum().end()).sum;
    return s;
  };
}
