// The follower applies a batch from memory (this process's own, or another's from its verified
// announcement) only when nothing can lie between it and what is applied; otherwise it reads the log,
// so no write is skipped, applied twice or out of order.
// The log here is an in-memory array with the shape readLog returns (cluster/change-log.ts).
import { expect, it } from 'vitest';
import type { LoggedWrite } from '../../cluster/change-log.js';
import { DirectoryFollower } from '../../cluster/follower.js';
import { createLogger } from '../../lib/log.js';

function setup(initial: LoggedWrite[] = []) {
  const log: LoggedWrite[] = [...initial];
  const applied: string[] = [];
  let reads = 0;
  let gate: Promise<void> | undefined;
  const follower = new DirectoryFollower<string[], string>({
    read: async (position) => {
      reads++;
      await gate;
      const writes = log.filter((w) => BigInt(w.seq) > BigInt(position));
      return { horizon: '0', writes, more: false };
    },
    snapshot: async () => ({ snapshot: [], position: '0' }),
    decode: (payload) => String(payload),
    target: { resync: () => undefined, apply: (c) => applied.push(c) },
    logger: createLogger('silent'),
  });
  return {
    log, applied, follower,
    reads: () => reads,
    hold() {
      let open!: () => void;
      gate = new Promise((r) => (open = r));
      return () => { gate = undefined; open(); };
    },
  };
}

it('applies its own batch without reading when it follows on from the applied position', async () => {
  const t = setup([{ seq: '1', payload: 'a' }]);
  await t.follower.listening();
  const readsAfterStart = t.reads();
  const batch = [{ seq: '2', payload: 'b' }, { seq: '3', payload: 'c' }];
  t.log.push(...batch);
  await t.follower.caughtUpTo('3', batch);
  expect({ applied: t.applied, position: t.follower.position, reads: t.reads() - readsAfterStart }).toEqual({ applied: ['a', 'b', 'c'], position: '3', reads: 0 });
});

it('reads the log when another write lies between the applied position and its batch', async () => {
  const t = setup();
  await t.follower.listening();
  t.log.push({ seq: '1', payload: 'other instance' }, { seq: '2', payload: 'mine' });
  await t.follower.caughtUpTo('2', [{ seq: '2', payload: 'mine' }]);
  expect(t.applied).toEqual(['other instance', 'mine']);
});

it('reads the log when its batch has a gap, or when a read is under way (never applies a write twice)', async () => {
  const t = setup();
  await t.follower.listening();
  t.log.push({ seq: '1', payload: 'x' }, { seq: '3', payload: 'y' });
  await t.follower.caughtUpTo('3', [{ seq: '1', payload: 'x' }, { seq: '3', payload: 'y' }]);
  expect(t.applied).toEqual(['x', 'y']);

  const release = t.hold();
  t.follower.wake();
  t.log.push({ seq: '4', payload: 'z' });
  const own = t.follower.caughtUpTo('4', [{ seq: '4', payload: 'z' }]);
  release();
  await own;
  expect({ applied: t.applied, position: t.follower.position }).toEqual({ applied: ['x', 'y', 'z'], position: '4' });
});

it('applies another instance’s announced batch without reading when it follows on; a repeat of it later changes nothing', async () => {
  const t = setup([{ seq: '1', payload: 'a' }]);
  await t.follower.listening();
  const readsAfterStart = t.reads();
  const batch = [{ seq: '2', payload: 'b' }, { seq: '3', payload: 'c' }];
  t.log.push(...batch);
  t.follower.announced(batch);
  expect({ applied: t.applied, position: t.follower.position, reads: t.reads() - readsAfterStart }).toEqual({ applied: ['a', 'b', 'c'], position: '3', reads: 0 });
  // Replayed (anyone LISTENing saw it): its seqs are no longer the next ones, so the log is asked instead.
  t.follower.announced(batch);
  await t.follower.catchUp();
  expect({ applied: t.applied, position: t.follower.position }).toEqual({ applied: ['a', 'b', 'c'], position: '3' });
});

it('reads the log for an announced batch after a gap (a batch whose announcement was not applied)', async () => {
  const t = setup();
  await t.follower.listening();
  t.log.push({ seq: '1', payload: 'too large to announce' }, { seq: '2', payload: 'announced' });
  t.follower.announced([{ seq: '2', payload: 'announced' }]);
  await t.follower.catchUp();
  expect({ applied: t.applied, position: t.follower.position }).toEqual({ applied: ['too large to announce', 'announced'], position: '2' });
});
