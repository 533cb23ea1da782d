// The appender (audit/appender.ts) on a real folder: regressions of its batching and group-commit
// loop, and how it works through a backlog on the event loop.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Appender, type AppenderReport } from '../../audit/appender.js';
import { EMPTY_HEAD, checkLine, eventJson } from '../../audit/chain.js';
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

  it('seals a backlog a bounded part at a time, one write each, and puts an asked-for checkpoint after all of it', async () => {
    const series = seriesOf(join(dir.path, 'rolegate.jsonl'), 'gw-1');
    // Every write the appender makes, by size: FileHandle's prototype is reached through a handle.
    const probe = await open(join(dir.path, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { write: (...args: unknown[]) => Promise<{ bytesWritten: number }> };
    await probe.close();
    const write = proto.write;
    const writes: number[] = [];
    proto.write = function (this: unknown, ...args: unknown[]) {
      writes.push(args[2] as number);
      return write.apply(this, args);
    };
    try {
      const signingKeyPem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
      let done: () => void = () => undefined;
      const allDurable = new Promise<void>((resolve) => (done = resolve));
      const appender = new Appender({ series, instance: 'gw-1', rotateBytes: 1 << 30, n: 0, size: 0, head: EMPTY_HEAD, retryMs: 100, signingKeyPem }, {
        durable: (r) => r.head.seq === 40_001 && done(),
        failed: (err) => {
          throw new Error(err.message);
        },
        recovered: () => undefined,
        replaced: () => undefined,
      });
      // 40,000 events (about 8 MiB queued) in 40 batches in one turn, as after an outage.
      const ts = new Date().toISOString();
      for (let b = 0; b < 40; b++) {
        const lines = Array.from({ length: 1000 }, (_, i) => `${ts}\t${denied(b * 1000 + i)}\n`).join('');
        appender.enqueue(Buffer.from(lines), 1000);
      }
      appender.requestCheckpoint();
      appender.requestSync();
      await allDurable;
      await appender.close(1_000);
      // Without the bound, one batch of every pending event: one write of all of it.
      const file = readFileSync(seriesFile(series, 1), 'utf8');
      expect(writes.length).toBeGreaterThan(5);
      expect(Math.max(...writes)).toBeLessThan(Buffer.byteLength(file) / 4);
      const written = file.trim().split('\n');
      expect(written).toHaveLength(40_001);
      const checked = written.map((line) => checkLine(line));
      expect(checked.every((c, i) => c.ok && c.seq === i + 1 && (i === 0 || c.prev === (checked[i - 1] as { hash: string }).hash))).toBe(true);
      expect(written.slice(0, 40_000).map((l) => (JSON.parse(l) as { client: { port: number } }).client.port)).toEqual(Array.from({ length: 40_000 }, (_, i) => i));
      expect(JSON.parse(written[40_000] as string)).toMatchObject({ type: 'checkpoint', upto: 40_000 });
    } finally {
      proto.write = write;
    }
  });
});
