// Ending many sessions at once: their idle upstream connections get their Terminate at most two at a
// time, in order, each done when the server closes; a server that never closes is cut off after the
// grace period. The "server" is a TCP listener that takes its time to close, as a backend's exit does.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, expect, it } from 'vitest';
import { goodbyesPending, sayGoodbye } from '../../proxy/upstream/farewell.js';

let server: Server | undefined;
const accepted: Socket[] = [];
afterEach(async () => {
  for (const s of accepted.splice(0)) s.destroy();
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

/** A server that closes each connection `exitMs` after its Terminate ('X'), or never when exitMs < 0. */
async function slowToExit(exitMs: number) {
  const stats = { exiting: 0, maxExiting: 0, terminated: [] as number[] };
  let n = 0;
  // allowHalfOpen: like a backend, the server closes when it is done, not when our FIN arrives.
  server = createServer({ allowHalfOpen: true }, (s: Socket) => {
    const id = n++;
    accepted.push(s);
    s.on('error', () => undefined);
    s.on('data', (b: Buffer) => {
      if (b[0] !== 0x58) return;
      stats.terminated.push(id);
      stats.exiting++;
      stats.maxExiting = Math.max(stats.maxExiting, stats.exiting);
      if (exitMs < 0) return;
      setTimeout(() => {
        stats.exiting--;
        s.destroy();
      }, exitMs);
    });
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  const port = (server!.address() as { port: number }).port;
  const open = async (count: number): Promise<Socket[]> =>
    Promise.all(Array.from({ length: count }, () => new Promise<Socket>((r) => { const c = connect(port, '127.0.0.1', () => r(c)); })));
  return { stats, open };
}

it('says goodbye to many idle upstream connections two at a time', async () => {
  const { stats, open } = await slowToExit(15);
  const sockets = await open(12);
  const closed = sockets.map((s) => new Promise((r) => s.once('close', r)));
  for (const s of sockets) sayGoodbye(s);
  expect(goodbyesPending()).toBe(12);
  await Promise.all(closed);
  expect(stats.maxExiting).toBe(2);
  expect(stats.terminated).toHaveLength(12);
  expect(goodbyesPending()).toBe(0);
});

it('skips a connection the server closed while it waited, and cuts off one that never closes', async () => {
  const { stats, open } = await slowToExit(-1);
  const [stuck, gone, queued] = await open(3);
  const t0 = Date.now();
  const closed = [stuck!, queued!].map((s) => new Promise((r) => s.once('close', r)));
  sayGoodbye(stuck!);
  gone!.destroy();
  sayGoodbye(gone!);
  sayGoodbye(queued!);
  await Promise.all(closed);
  // Both got their Terminate (the queued one did not wait behind the one that never closes: two run
  // at once), neither closed by the server, both cut off after the 2 s grace.
  expect(stats.terminated).toHaveLength(2);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(1_900);
  expect(goodbyesPending()).toBe(0);
}, 10_000);

// The leak found in a heap snapshot at 6bf9c68: the queue kept every socket it had said goodbye to
// (up to 1,024 before it compacted), and through the session's error listener on each, the whole
// ended session (relay, taps, client socket): 292 ended sessions were still reachable with none open.
it('a connection said goodbye to is no longer held by the queue once it is closed', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const { open } = await slowToExit(1);
  const refs: WeakRef<object>[] = [];
  await (async () => {
    const sockets = await open(3);
    const closed = sockets.map((s) => new Promise((r) => s.once('close', r)));
    for (const s of sockets) {
      // What a session hangs on its upstream socket: a listener whose closure holds the session.
      const session = { relay: Buffer.alloc(64 * 1024) };
      refs.push(new WeakRef(session));
      s.on('end', () => void session.relay.length);
      sayGoodbye(s);
    }
    await Promise.all(closed);
  })();
  accepted.splice(0).forEach((s) => s.destroy());
  // WeakRefs stay alive until the current job ends: collect in a later turn, twice to be sure.
  for (let i = 0; i < 2; i++) {
    await new Promise((r) => setTimeout(r, 10));
    gc();
  }
  expect(refs.map((r) => r.deref() === undefined)).toEqual([true, true, true]);
});
