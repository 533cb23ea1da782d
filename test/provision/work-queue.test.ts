// Who is provisioned next (docs/design.md §7 step 3): one task per person at a time, merged requests,
// urgent work first, bounded parallelism; with real asynchronous tasks.
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../provision/work-queue.js';

type Cause = { urgent: boolean; n: number };

function queue(concurrency: number, work: (key: string, cause: Cause) => Promise<void>) {
  return new WorkQueue<Cause>({
    concurrency,
    run: work,
    merge: (a, b) => ({ urgent: a.urgent || b.urgent, n: a.n + b.n }),
    priority: (c) => (c.urgent ? 0 : 1),
    onError: () => undefined,
  });
}

describe('WorkQueue', () => {
  it('never runs one key twice at once, and runs a key again when asked while it ran', async () => {
    const running = new Set<string>();
    let overlaps = 0;
    const runs: string[] = [];
    const q = queue(4, async (key) => {
      if (running.has(key)) overlaps++;
      running.add(key);
      runs.push(key);
      await sleep(5);
      running.delete(key);
    });
    for (let i = 0; i < 50; i++) q.push(`p${i % 3}`, { urgent: false, n: 1 });
    await sleep(1);
    for (let i = 0; i < 30; i++) q.push(`p${i % 3}`, { urgent: true, n: 1 });
    await q.idle();
    expect(overlaps).toBe(0);
    // Each key: one run for the first burst (merged), one more for what came in meanwhile.
    expect(runs.filter((r) => r === 'p0')).toHaveLength(2);
  });

  it('runs different keys in parallel up to the limit, urgent ones first', async () => {
    let now = 0;
    let peak = 0;
    const order: string[] = [];
    const q = queue(2, async (key) => {
      now++;
      peak = Math.max(peak, now);
      order.push(key);
      await sleep(5);
      now--;
    });
    q.pause();
    for (const k of ['a', 'b', 'c', 'd']) q.push(k, { urgent: false, n: 1 });
    q.push('urgent', { urgent: true, n: 1 });
    q.push('c', { urgent: true, n: 1 });
    expect(q.has('urgent')).toBe(true);
    q.resume();
    await q.idle();
    expect(peak).toBe(2);
    expect(order.slice(0, 2)).toEqual(['urgent', 'c']);
    expect(order).toHaveLength(5);
  });

  it('settled(key) waits for that key only; a task that throws does not stop the queue', async () => {
    const q = queue(2, async (key) => {
      await sleep(key === 'slow' ? 30 : 1);
      if (key === 'bad') throw new Error('boom');
    });
    q.push('slow', { urgent: false, n: 1 });
    q.push('bad', { urgent: false, n: 1 });
    q.push('fast', { urgent: false, n: 1 });
    await q.settled('fast');
    expect(q.has('slow')).toBe(true);
    await q.idle();
    expect(q.size).toBe(0);
  });
});
