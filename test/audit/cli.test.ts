// The security team's tools on a real audit log (docs/design.md §3, §6): a stack with small rotated
// files and an Ed25519 signing key records logins, a refusal, statements, directory changes and a
// revocation; then `rolegate audit verify|search|sessions|timeline|export` run as the real bin, and
// tampered copies of the files are caught at the right line.
import { generateKeyPairSync } from 'node:crypto';
import { spawn } from 'node:child_process';
import { cpSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli } from '../helpers/cli.js';
import { PATCH_URN, startStack, type Stack } from '../helpers/stack.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

let stack: Stack;
let work: TempDir;
let publicKey: string;
let aliceId: string;

beforeAll(async () => {
  work = await tempDir('rolegate-audit-cli-');
  const keys = generateKeyPairSync('ed25519');
  await writeFile(join(work.path, 'signing.pem'), keys.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  publicKey = join(work.path, 'signing.pub.pem');
  await writeFile(publicKey, keys.publicKey.export({ type: 'spki', format: 'pem' }));
  stack = await startStack({ config: { audit: { rotateBytes: '8KiB', signingKey: join(work.path, 'signing.pem'), checkpointEvery: '200ms' } } });
  aliceId = await stack.provision('alice@corp.com', ['analysts']);
  await stack.provision('bob@corp.com', ['engineering']);
  const alice = await stack.connect('alice@corp.com', { app: 'report' });
  for (let i = 0; i < 30; i++) await alice.query(`select ${i} as i, name from items`);
  await alice.query('select * from missing_table').catch(() => undefined);
  // Bob asks for a role his groups grant, then one they do not.
  const bob = await stack.connect('bob@corp.com', { user: stack.roles.writer });
  await bob.query('select count(*) from items');
  await bob.end();
  await stack.connect('bob@corp.com', { user: stack.roles.certRole }).then((c) => c.end(), () => undefined);
  // Alice is deactivated while her session runs: it ends as revoked.
  const ended = new Promise((resolve) => alice.once('error', resolve));
  const res = await stack.scim(`/Users/${aliceId}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active: false } }] });
  expect(res.status).toBe(200);
  await ended;
  await waitFor(() => stack.auditEvents().some((e) => e.type === 'session.end' && e.reason === 'revoked'), 5_000, 'revoked session.end');
  // Let a signed checkpoint cover the newest lines.
  await waitFor(() => stack.auditEvents().at(-1)?.type === 'checkpoint', 5_000, 'a checkpoint after the last event');
});
afterAll(async () => {
  await stack?.close();
  await work?.cleanup();
});

/** A copy of the audit folder to tamper with. */
function copyAudit(name: string): string {
  const to = join(work.path, name);
  cpSync(stack.auditDir, to, { recursive: true });
  return to;
}
function auditFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.jsonl')).sort().map((n) => join(dir, n));
}

describe('audit verify', () => {
  it('passes on the rotated, signed log and names its instance, files and checkpoints', async () => {
    expect(auditFiles(stack.auditDir).length).toBeGreaterThan(2);
    const r = await runCli(['audit', 'verify', '--public-key', publicKey, stack.auditDir]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^OK {3}.*instance test-\w+, \d+ files, \d+ lines \(seq 1-\d+\), head [0-9a-f]{64}; [1-9]\d* signed checkpoints? verified, 0 lines after the last one/);
  });

  it('names the file and line of an edited, deleted, reordered or inserted line, and of a cut-off tail', async () => {
    const cases: [string, (lines: string[]) => string[], RegExp][] = [
      ['edited', (l) => l.map((x, i) => (i === 3 ? x.replace('"seq":', '"seq": ') : x)), /line 4 .*the line was edited|line 4: .*edited/],
      ['deleted', (l) => l.filter((_, i) => i !== 5), /line 6 \(seq \d+\): seq jumps from \d+ to \d+: 1 line missing \(deleted\)/],
      ['reordered', (l) => l.map((x, i) => (i === 2 ? (l[3] as string) : i === 3 ? (l[2] as string) : x)), /line 3 \(seq \d+\): seq jumps|line 3 .*reordered/],
      ['inserted', (l) => [...l.slice(0, 4), l[3] as string, ...l.slice(4)], /line 5 \(seq \d+\): seq goes back .* inserted or .* reordered/],
    ];
    for (const [name, change, expected] of cases) {
      const dir = copyAudit(name);
      const second = auditFiles(dir)[1] as string;
      const lines = readFileSync(second, 'utf8').split('\n').filter((x) => x !== '');
      writeFileSync(second, `${change(lines).join('\n')}\n`);
      const r = await runCli(['audit', 'verify', dir]);
      expect(r.code, name).toBe(1);
      expect(r.stdout, name).toContain(`FAIL`);
      expect(r.stdout, name).toContain(second);
      expect(r.stdout, name).toMatch(expected);
    }
    // The newest lines cut off in the middle of a line.
    const dir = copyAudit('cut');
    const last = auditFiles(dir).at(-1) as string;
    const text = readFileSync(last, 'utf8');
    writeFileSync(last, text.slice(0, text.length - 40));
    const r = await runCli(['audit', 'verify', dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/incomplete last line/);
  });

  it('a whole first file deleted shows as a chain that does not start at seq 1', async () => {
    const dir = copyAudit('no-first');
    const first = auditFiles(dir)[0] as string;
    const { unlinkSync } = await import('node:fs');
    unlinkSync(first);
    const r = await runCli(['audit', 'verify', dir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/the chain starts at seq \d+: the lines before it are missing/);
    expect((await runCli(['audit', 'verify', '--partial', dir])).code).toBe(0);
  });

  it('with --public-key, a checkpoint signed by another key or re-signed after an edit fails', async () => {
    const other = generateKeyPairSync('ed25519');
    const otherPub = join(work.path, 'other.pub.pem');
    await writeFile(otherPub, other.publicKey.export({ type: 'spki', format: 'pem' }));
    const r = await runCli(['audit', 'verify', '--public-key', otherPub, stack.auditDir]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/checkpoint signed by key [0-9a-f]{16}, not by the key given/);
    const bad = await runCli(['audit', 'verify', '--public-key', join(work.path, 'missing.pem'), stack.auditDir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/cannot read the public key file/);
  });
});

describe('the order of cause and effect', () => {
  it('a deactivation is recorded before the session end it causes (the revocation waits for the SCIM write\'s event)', () => {
    const events = stack.auditEvents();
    const deactivated = events.find((e) => e.type === 'directory.change' && e.id === aliceId && e.active === false);
    const revoked = events.find((e) => e.type === 'session.end' && e.reason === 'revoked');
    expect(deactivated).toBeDefined();
    expect(revoked).toBeDefined();
    expect(deactivated!.seq as number).toBeLessThan(revoked!.seq as number);
  });
});

describe('audit search, sessions, timeline', () => {
  it('search --person: the person\'s events as a table; --json gives the lines as they are on disk', async () => {
    const r = await runCli(['audit', 'search', '--person', 'alice@corp.com', stack.auditDir]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^TIME \(UTC\)\s+TYPE\s+WHO\s+SESSION\s+WHAT$/);
    expect(r.stdout).toMatch(/directory\.change\s+scim-token#1\s+User alice@corp\.com create/);
    expect(r.stdout).toMatch(/session\.start\s+alice@corp\.com\s+[0-9a-f]{8}\s+login as rg_\w+_reader to \w+ from 127\.0\.0\.1 \(report\)/);
    expect(r.stdout).toMatch(/statement\s+alice@corp\.com\s+[0-9a-f]{8}\s+select 7 as i, name from items -> SELECT 2/);
    expect(r.stdout).toMatch(/error 42P01: select \* from missing_table/);
    expect(r.stdout).toMatch(/session ended: access revoked/);
    expect(r.stdout).not.toMatch(/bob@corp\.com/);

    const json = await runCli(['audit', 'search', '--person', 'alice@corp.com', '--type', 'statement', '--json', stack.auditDir]);
    const onDisk = new Set(auditFiles(stack.auditDir).flatMap((f) => readFileSync(f, 'utf8').split('\n')));
    const out = json.stdout.trim().split('\n');
    expect(out).toHaveLength(31);
    for (const line of out) expect(onDisk.has(line)).toBe(true);
  });

  it('search --type session.denied names the refused login and its precise reason', async () => {
    const r = await runCli(['audit', 'search', '--type', 'session.denied', '--json', stack.auditDir]);
    const denied = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(denied).toEqual([expect.objectContaining({ requestedUser: stack.roles.certRole, reason: 'role_not_entitled', sqlstate: '28000' })]);
    const bad = await runCli(['audit', 'search', '--type', 'nonsense', stack.auditDir]);
    expect(bad.code).toBe(2);
  });

  it('sessions: one row per session with person, role, database, client, duration, statements, end reason', async () => {
    const r = await runCli(['audit', 'sessions', '--json', stack.auditDir]);
    const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(rows).toEqual([
      expect.objectContaining({ person: 'alice@corp.com', role: stack.roles.reader, database: stack.db.name, application: 'report', statements: 31, reason: 'revoked' }),
      expect.objectContaining({ person: 'bob@corp.com', role: stack.roles.writer, statements: 1, reason: 'client_exit' }),
    ]);
    const table = await runCli(['audit', 'sessions', '--person', 'bob@corp.com', stack.auditDir]);
    expect(table.stdout).toMatch(/^SESSION\s+PERSON\s+ROLE\s+DATABASE\s+CLIENT\s+START \(UTC\)\s+DURATION\s+STATEMENTS\s+END\n/);
    expect(table.stdout.trim().split('\n')).toHaveLength(3);
  });

  it('timeline --person reads as the story: created, added to a group, login, statements, deactivated, session ended', async () => {
    const r = await runCli(['audit', 'timeline', '--person', 'alice@corp.com', stack.auditDir]);
    expect(r.code).toBe(0);
    const story = r.stdout.split('\n').map((l) => l.replace(/^\d{4}-\d{2}-\d{2} [\d:-]+\s+/, '')).filter((l) => l !== '');
    expect(story).toEqual([
      'Timeline of alice@corp.com (UTC)',
      'created in the directory (scim-token#1)',
      'added to analysts (scim-token#1)',
      expect.stringMatching(/^login as rg_\w+_reader to \w+ from 127\.0\.0\.1 \(report\)$/),
      '31 statements (1 failed)',
      'deactivated (scim-token#1)',
      expect.stringMatching(/^session ended: access revoked \(/),
    ]);
  });
});

describe('audit export', () => {
  it('jsonl gives every line as it is; ocsf gives one OCSF event per activity', async () => {
    const jsonl = await runCli(['audit', 'export', '--format', 'jsonl', stack.auditDir]);
    const all = auditFiles(stack.auditDir).flatMap((f) => readFileSync(f, 'utf8').split('\n').filter((l) => l !== ''));
    expect(jsonl.stdout.trim().split('\n')).toEqual(all);
    const ocsf = await runCli(['audit', 'export', '--format', 'ocsf', stack.auditDir]);
    const events = ocsf.stdout.trim().split('\n').map((l) => JSON.parse(l) as { class_uid: number });
    const classes = new Set(events.map((e) => e.class_uid));
    expect([...classes].sort()).toEqual([3001, 3002, 3006, 6005]);
  });

  it('--follow keeps reading as the log grows and across rotation into the next file', async () => {
    const child = spawn(process.execPath, [BIN, 'audit', 'export', '--format', 'jsonl', '--follow', stack.auditDir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    try {
      const before = auditFiles(stack.auditDir).length;
      await waitFor(() => out.split('\n').length > 10, 10_000, 'the backlog');
      const bob = await stack.connect('bob@corp.com', { user: stack.roles.writer, app: 'followed' });
      for (let i = 0; i < 40; i++) await bob.query(`select 'follow-${i}' as marker`);
      await bob.end();
      await waitFor(() => out.includes(`follow-39`), 10_000, () => `follow-39 in the followed output (${out.length} bytes)`);
      expect(auditFiles(stack.auditDir).length).toBeGreaterThan(before);
      const lines = out.trim().split('\n');
      for (let i = 0; i < 40; i++) expect(lines.filter((l) => l.includes(`'follow-${i}'`))).toHaveLength(1);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.on('close', resolve));
    }
  });
});
