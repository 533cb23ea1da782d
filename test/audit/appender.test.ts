// The appender (the audit writer's thread, audit/appender.ts) on a real folder: regressions of its
// batching and group-commit loop.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Appender, type AppenderReport } from '../../audit/appender.js';
import { EMPTY_HEAD, eventJson } from '../../audit/chain.js';
import { seriesFile, seriesOf } from '../../audit/files.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

let dir: TempDir;
beforeEach(async () => {
  dir = await tempDir('rolegate-appender-');
});
afterEach(async () => {
  await dir.cleanup();
});

const denied = (i: number) => eventJson({ type: 'session.denied', session: `s-${i}`, client: { address: '10.0.0.1', port: i }, requestedUser: null, database: null, reason: 'no_user', sqlstate: '28000' });

describe('Appender', () => {
  it('events queued while a sync is in flight are written and synced (regression: a lost wake-up stranded them and hung the logins waiting)', async () => {
    const series = seriesOf(join(dir.path, 'rolegate.jsonl'), 'gw-1');
    const durable: number[] = [];
    let appender: Appender | undefined;
    let second: () => void = () => undefined;
    const secondDurable = new Promise<void>((resolve) => (second = resolve));
    const report: AppenderReport = {
      durable: (r) => {
        durable.push(r.head.seq);
        // The next event and its sync request arrive while the loop that just synced is still
        // running, as a login's session.start does between two syncs.
        if (durable.length === 1) {
          appender?.enqueue(Buffer.from(`${new Date().toISOString()}\t${denied(2)}\n`), 1);
          appender?.requestSync();
        }
        if (r.head.seq === 2) second();
      },
      failed: (err) => {
        throw new Error(err.message);
      },
      recovered: () => undefined,
      replaced: () => undefined,
    };
    appender = new Appender({ series, instance: 'gw-1', rotateBytes: 1 << 20, n: 0, size: 0, head: EMPTY_HEAD, retryMs: 100 }, report);
    appender.enqueue(Buffer.from(`${new Date().toISOString()}\t${denied(1)}\n`), 1);
    appender.requestSync();
    const timeout = new Promise<'stranded'>((resolve) => setTimeout(() => resolve('stranded'), 3_000).unref());
    expect(await Promise.race([secondDurable.then(() => 'written' as const), timeout])).toBe('written');
    expect(durable).toEqual([1, 2]);
    await appender.close(1_000);
    expect(readFileSync(seriesFile(series, 1), 'utf8').trim().split('\n')).toHaveLength(2);
  });
});
