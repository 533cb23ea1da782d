// The audit writer on a real folder (docs/design.md §6): the chain across rotated files and
// restarts, a torn last line left alone, one series per instance with a lock, signed checkpoints,
// several instances merged by time by the readers, and the line format the hash covers.
import { generateKeyPairSync } from 'node:crypto';
import { appendFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GENESIS, checkLine, eventJson, sealJson, sealLine, sealQueuedInto } from '../../audit/chain.js';
import type { AuditEvent } from '../../audit/events.js';
import { readEvents } from '../../audit/read/events.js';
import { collectSeries } from '../../audit/read/sources.js';
import { verifySeries } from '../../audit/read/verify.js';
import { signerFromPem } from '../../audit/signing.js';
import { AuditWriter } from '../../audit/writer.js';
import { createLogger } from '../../lib/log.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

let dir: TempDir;
beforeEach(async () => {
  dir = await tempDir('rolegate-audit-writer-');
});
afterEach(async () => {
  await dir.cleanup();
});

const logger = createLogger('silent');
const ev = (i: number): AuditEvent => ({ type: 'session.denied', session: `s-${i}`, client: { address: '10.0.0.1', port: 5000 + i }, requestedUser: `u${i}@corp.com`, database: 'app', reason: 'not_provisioned', sqlstate: '28000' });

function open(instance: string, extra: Partial<Parameters<typeof AuditWriter.open>[0]> = {}): Promise<AuditWriter> {
  return AuditWriter.open({ base: join(dir.path, 'audit', 'rolegate.jsonl'), instance, rotateBytes: 4096, now: Date.now, logger, ...extra });
}
const files = (): string[] => readdirSync(join(dir.path, 'audit')).filter((n) => n.endsWith('.jsonl')).sort();
const lines = (): string[] => files().flatMap((f) => readFileSync(join(dir.path, 'audit', f), 'utf8').split('\n').filter((l) => l !== ''));

describe('a sealed line', () => {
  it('starts with v, ts, type, instance, seq, ends with prev and hash; the hash covers the line\'s own bytes', () => {
    const { line, head } = sealLine(ev(1), '2026-11-23T09:05:00.000Z', 'gw-1', { seq: 0, hash: GENESIS });
    expect(line.startsWith('{"v":1,"ts":"2026-11-23T09:05:00.000Z","type":"session.denied","instance":"gw-1","seq":1,"session":"s-1"')).toBe(true);
    expect(line.endsWith(`,"prev":"${GENESIS}","hash":"${head.hash}"}`)).toBe(true);
    expect(checkLine(line)).toMatchObject({ ok: true, seq: 1, prev: GENESIS, hash: head.hash });
    // One byte anywhere, even whitespace that JSON would not mind, breaks it.
    expect(checkLine(line.replace('"seq":1', '"seq": 1'))).toMatchObject({ ok: false });
    expect(checkLine(line.replace('10.0.0.1', '10.0.0.2'))).toMatchObject({ ok: false, problem: expect.stringMatching(/edited/) });
  });
});

describe('a line sealed from bytes into bytes (the appender\'s way)', () => {
  const statement = (text: string): string => eventJson({ type: 'statement', session: 's-1', n: 1, protocol: 'simple', text, params: { count: 0 }, outcome: 'ok', tag: 'SELECT 1', rows: 1, sqlstate: null, ms: 0.5 });
  const TS = '2026-12-02T20:00:00.000Z';
  // A queued line as the event loop writes it, after some other bytes, and where it lies.
  const queued = (json: string): { src: Buffer; at: number; tab: number; end: number } => {
    const src = Buffer.from(`${TS}\tleading line\n${TS}\t${json}\n${TS}\tnext line\n`, 'utf8');
    const at = src.indexOf('\n') + 1;
    const tab = src.indexOf('\t', at);
    return { src, at, tab, end: src.indexOf('\n', tab) };
  };

  it.each([
    ['ASCII', 'select 1'],
    ['two- and three-byte characters', "select 'Zürich', '東京'"],
    ['characters outside the BMP (surrogate pairs)', "select '🦀🐘'"],
    ['escaped quotes, backslashes, tabs and newlines', 'select \'a"b\\c\td\ne\''],
  ])('holds exactly the line sealJson gives, and a newline, for %s', (_name, text) => {
    const head = { seq: 41, hash: 'a'.repeat(64) };
    const out = Buffer.alloc(4096, 0xff);
    const q = queued(statement(text));
    const into = sealQueuedInto(out, 100, q.src, q.at, q.tab, q.end, Buffer.from('"gw-ü"'), head);
    const { line, head: next } = sealJson(statement(text), TS, '"gw-ü"', head);
    expect(into?.head).toEqual(next);
    expect(out.subarray(100, into?.end).toString('utf8')).toBe(`${line}\n`);
    expect(checkLine(line)).toMatchObject({ ok: true, seq: 42, hash: next.hash });
    // Nothing before the line is touched.
    expect(out.subarray(0, 100).every((b) => b === 0xff)).toBe(true);
  });

  it('holds exactly what sealJson gives for every event type the writer sees', () => {
    const events: AuditEvent[] = [ev(7), { type: 'checkpoint', upto: 9, head: 'b'.repeat(64), sig: 'c2ln', keyId: 'k1' }];
    let head = { seq: 0, hash: GENESIS };
    for (const e of events) {
      const q = queued(eventJson(e));
      const out = Buffer.alloc(2048);
      const into = sealQueuedInto(out, 0, q.src, q.at, q.tab, q.end, Buffer.from('"gw-1"'), head);
      const sealed = sealLine(e, TS, 'gw-1', head);
      expect(out.subarray(0, into?.end).toString('utf8')).toBe(`${sealed.line}\n`);
      head = sealed.head;
    }
  });

  it('holds exactly what sealJson gives for a seq of any length, up to the largest safe integer', () => {
    for (const seq of [0, 8, 9, 99, 2 ** 31 - 1, 2 ** 31, Number.MAX_SAFE_INTEGER - 1]) {
      const head = { seq, hash: 'f'.repeat(64) };
      const q = queued(statement('select 1'));
      const out = Buffer.alloc(1024);
      const into = sealQueuedInto(out, 0, q.src, q.at, q.tab, q.end, Buffer.from('"gw-1"'), head);
      const { line, head: next } = sealJson(statement('select 1'), TS, '"gw-1"', head);
      expect(out.subarray(0, into?.end).toString('utf8')).toBe(`${line}\n`);
      expect(into?.head).toEqual(next);
    }
  });

  it('writes nothing and says so when the room after the offset may not hold the line', () => {
    const q = queued(statement('東京'.repeat(100)));
    const out = Buffer.alloc(1024, 0xff);
    expect(sealQueuedInto(out, 0, q.src, q.at, q.tab, q.end, Buffer.from('"gw-1"'), { seq: 0, hash: GENESIS })).toBeUndefined();
    expect(out.every((b) => b === 0xff)).toBe(true);
  });
});

describe('the writer', () => {
  it('keeps text beyond ASCII intact through batches larger than the first buffers of the writer and the appender', async () => {
    const w = await open('gw-1', { rotateBytes: 64 << 20 });
    // About 2.6 MB in one batch: past the writer's first 16 KiB and the appender's 1 MiB.
    const texts = Array.from({ length: 3000 }, (_, i) => `select '${'Zürich 東京 🐘 '.repeat(40)}${i}'`);
    texts.forEach((text, i) => w.append({ type: 'statement', session: 's-1', n: i + 1, protocol: 'simple', text, params: { count: 0 }, outcome: 'ok', tag: 'SELECT 1', rows: 1, sqlstate: null, ms: 0.5 }));
    // And a second batch after it, written from the same reused bytes.
    await w.flushed();
    w.append(ev(1));
    await w.flushed();
    await w.close();
    const written = lines();
    expect(written).toHaveLength(3001);
    expect(written.slice(0, 3000).map((l) => JSON.parse(l).text)).toEqual(texts);
    expect(JSON.parse(written[3000] as string).session).toBe('s-1');
    const [report] = await verifySeries(await collectSeries([join(dir.path, 'audit')]));
    expect(report).toMatchObject({ lines: 3001, broken: null });
  });

  it('rotates at rotateBytes and continues the chain across files and across a restart', async () => {
    let w = await open('gw-1');
    for (let i = 0; i < 40; i++) w.append(ev(i));
    await w.flushed();
    await w.close();
    w = await open('gw-1');
    for (let i = 40; i < 80; i++) w.append(ev(i));
    await w.flushed();
    expect(w.head().seq).toBe(80);
    await w.close();
    expect(files().length).toBeGreaterThan(3);
    for (const f of files()) expect(readFileSync(join(dir.path, 'audit', f)).length).toBeLessThanOrEqual(4096);
    const [report] = await verifySeries(await collectSeries([join(dir.path, 'audit')]));
    expect(report).toMatchObject({ instance: 'gw-1', lines: 80, firstSeq: 1, lastSeq: 80, broken: null });
    expect(lines().map((l) => JSON.parse(l).session)).toEqual(Array.from({ length: 80 }, (_, i) => `s-${i}`));
  });

  it('makes lines nobody waits for durable within the group-commit delay (200 ms), without a flushed() call', async () => {
    const w = await open('gw-1');
    w.append(ev(1));
    w.append(ev(2));
    const t0 = Date.now();
    while (w.head().seq < 2 && Date.now() - t0 < 5_000) await new Promise((r) => setTimeout(r, 10));
    expect(w.head().seq).toBe(2);
    // Posted after 10 ms, written within 10 ms, synced within 200 ms; generous for a loaded machine.
    expect(Date.now() - t0).toBeLessThan(2_000);
    await w.close();
  });

  it('leaves a torn last line (a crash mid-write) as it is and goes on in the next file', async () => {
    let w = await open('gw-1');
    for (let i = 0; i < 3; i++) w.append(ev(i));
    await w.flushed();
    await w.close();
    const first = join(dir.path, 'audit', files()[0] as string);
    const before = readFileSync(first, 'utf8');
    appendFileSync(first, '{"v":1,"ts":"2026-11-23T09:0');
    w = await open('gw-1');
    w.append(ev(3));
    await w.flushed();
    await w.close();
    expect(readFileSync(first, 'utf8')).toBe(`${before}{"v":1,"ts":"2026-11-23T09:0`);
    expect(files()).toHaveLength(2);
    const [report] = await verifySeries(await collectSeries([join(dir.path, 'audit')]));
    expect(report?.broken).toMatchObject({ line: 4, problem: expect.stringMatching(/incomplete last line/) });
    // The line after the torn one continues the chain from the last complete line.
    const next = JSON.parse(readFileSync(join(dir.path, 'audit', files()[1] as string), 'utf8'));
    expect(next).toMatchObject({ seq: 4, prev: JSON.parse(before.trim().split('\n').at(-1) as string).hash });
  });

  it('refuses a second process on the same instance name (two writers would fork the chain)', async () => {
    const w = await open('gw-1');
    // The lock of a live process (this one, through another writer) is not taken over.
    writeFileSync(join(dir.path, 'audit', 'rolegate.gw-2.lock'), `1 another-host\n`);
    await expect(open('gw-2')).rejects.toMatchObject({ code: 'audit_in_use', message: expect.stringMatching(/in use by process 1 on another-host/) });
    await expect(open('gw-1')).rejects.toMatchObject({ code: 'audit_in_use' });
    await w.close();
    // Released on close: the instance can open again.
    await (await open('gw-1')).close();
  });

  it('writes a signed checkpoint when asked and when closing, covering the newest line', async () => {
    const keys = generateKeyPairSync('ed25519');
    const w = await open('gw-1', { signingKeyPem: keys.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string });
    w.append(ev(1));
    w.requestCheckpoint();
    await w.flushed();
    w.append(ev(2));
    await w.close();
    const types = lines().map((l) => JSON.parse(l).type);
    expect(types).toEqual(['session.denied', 'checkpoint', 'session.denied', 'checkpoint']);
    const [report] = await verifySeries(await collectSeries([join(dir.path, 'audit')]), { publicKey: keys.publicKey });
    expect(report).toMatchObject({ checkpoints: 2, uncovered: 0, broken: null });
    expect(() => signerFromPem(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }))).toThrow(/must be an Ed25519 key/);
  });

  it('several instances write their own files; the readers merge them by time and verify each chain', async () => {
    let t = Date.parse('2026-11-23T09:00:00Z');
    const now = (): number => (t += 1000);
    const a = await open('gw-a', { now });
    const b = await open('gw-b', { now });
    for (let i = 0; i < 6; i++) (i % 2 === 0 ? a : b).append(ev(i));
    await Promise.all([a.flushed(), b.flushed()]);
    await Promise.all([a.close(), b.close()]);
    const series = await collectSeries([join(dir.path, 'audit')]);
    expect(series.map((s) => s.key)).toEqual(['rolegate.gw-a', 'rolegate.gw-b']);
    const merged: string[] = [];
    for await (const r of readEvents(series)) merged.push(r.session as string);
    expect(merged).toEqual(['s-0', 's-1', 's-2', 's-3', 's-4', 's-5']);
    expect((await verifySeries(series)).map((r) => [r.instance, r.lines, r.broken])).toEqual([['gw-a', 3, null], ['gw-b', 3, null]]);
  });
});
