// A failed audit write fails closed (docs/design.md §6): while the audit path cannot be written, new
// sessions get FATAL 58030 `audit log unavailable` and /readyz is 503; once it can, logins resume by
// themselves, and the log on disk is one unbroken chain with nothing lost or rewritten. Also the
// head endpoint an outside system records.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { readAuditDir, startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { pgLoginError } from '../e2e/login-helpers.js';

let stack: Stack;
const ADMIN_TOKEN = 'admin-token-for-the-audit-head-0123456789';

beforeAll(async () => {
  stack = await startStack({ config: { admin: { tokens: [ADMIN_TOKEN] } } });
  await stack.provision('alice@corp.com', ['analysts']);
});
afterAll(async () => {
  await stack?.close();
});

async function readyz(): Promise<{ status: number; text: string }> {
  const res = await fetch(`${stack.adminUrl}/readyz`);
  return { status: res.status, text: await res.text() };
}

function filesIn(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.jsonl')).sort().map((n) => join(dir, n));
}

/** `chattr +i` works here (ext4 and friends, as root): writes to an open file then fail with EPERM. */
function immutableSupported(file: string): boolean {
  try {
    execFileSync('chattr', ['+i', file], { stdio: 'ignore' });
    execFileSync('chattr', ['-i', file], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('the audit folder disappears during a run (moved away: volume unmounted, removed)', () => {
  it('refuses new sessions with 58030 and /readyz 503, keeps live ones, resumes by itself, loses nothing', async () => {
    const live = await stack.connect('alice@corp.com', { app: 'before-outage' });
    await live.query('select 1 as before');
    await stack.server.audit.flushed();
    expect((await readyz()).status).toBe(200);
    const away = `${stack.auditDir}.away`;
    const linesBefore = readAuditDir(stack.auditDir).length;
    renameSync(stack.auditDir, away);

    // The first login after the outage waits for its session.start and is refused.
    const token = await stack.tokenFor('alice@corp.com');
    expect(await pgLoginError(stack.pgConfig('alice@corp.com', token))).toEqual({ code: '58030', message: 'audit log unavailable' });
    expect(await readyz()).toEqual({ status: 503, text: 'audit log unavailable\n' });
    // While it is down, logins are refused before the token is even checked.
    expect(await pgLoginError(stack.pgConfig('alice@corp.com', token))).toEqual({ code: '58030', message: 'audit log unavailable' });
    // The session that was already running goes on; its statements wait in memory.
    expect((await live.query('select 2 as during')).rows).toEqual([{ during: 2 }]);
    expect(stack.server.audit.available).toBe(false);

    mkdirSync(stack.auditDir);
    await waitFor(async () => (await readyz()).status === 200, 5_000, 'readyz back to 200');
    const after = await stack.connect('alice@corp.com', { app: 'after-outage' });
    expect((await after.query('select 3 as after')).rows).toEqual([{ after: 3 }]);
    await after.end();
    await live.end();
    await stack.server.audit.flushed();

    // Nothing already written was lost or rewritten: the moved files hold what they held.
    expect(readAuditDir(away)).toHaveLength(linesBefore);
    // Both folders together are one unbroken chain.
    const r = await runCli(['audit', 'verify', away, stack.auditDir]);
    expect(r.stdout).toMatch(/^OK /);
    expect(r.code).toBe(0);
    // What happened during the outage is on disk now: the refused logins, the statement of the
    // session that ran through it, and the session that was refused while waiting for its start.
    const later = readAuditDir(stack.auditDir);
    const denied = later.filter((e) => e.type === 'session.denied');
    expect(denied.map((e) => [e.reason, e.sqlstate])).toContainEqual(['audit_unavailable', '58030']);
    expect(later.some((e) => e.type === 'statement' && e.text === 'select 2 as during')).toBe(true);
    expect(later.some((e) => e.type === 'session.end' && e.reason === 'audit_unavailable')).toBe(true);
  });
});

describe('the audit file loses write permission (immutable) during a run', () => {
  it('fails closed, and the batch that failed is written once when the file is writable again', async (ctx) => {
    await stack.server.audit.flushed();
    const file = filesIn(stack.auditDir).at(-1) as string;
    if (!immutableSupported(file)) {
      ctx.skip();
      return;
    }
    const sizeBefore = statSync(file).size;
    const textBefore = readFileSync(file, 'utf8');
    execFileSync('chattr', ['+i', file]);
    try {
      const token = await stack.tokenFor('alice@corp.com');
      expect(await pgLoginError(stack.pgConfig('alice@corp.com', token))).toEqual({ code: '58030', message: 'audit log unavailable' });
      expect((await readyz()).status).toBe(503);
      expect(statSync(file).size).toBe(sizeBefore);
    } finally {
      execFileSync('chattr', ['-i', file]);
    }
    await waitFor(async () => (await readyz()).status === 200, 5_000, 'readyz back to 200');
    const c = await stack.connect('alice@corp.com', { app: 'after-immutable' });
    await c.end();
    await stack.server.audit.flushed();
    // Appended only: the bytes that were there are there unchanged.
    expect(readFileSync(file, 'utf8').startsWith(textBefore)).toBe(true);
    const all = readAuditDir(stack.auditDir);
    const seqs = all.map((e) => e.seq as number);
    expect(new Set(seqs).size).toBe(seqs.length);
    // The refused login of each outage: its session.start, then its end for want of an audit log.
    const refused = all.filter((e) => e.type === 'session.end' && e.reason === 'audit_unavailable');
    expect(refused).toHaveLength(2);
  });
});

describe('GET /admin/audit/head', () => {
  it('serves the seq and hash of the newest line on disk, with the admin token only', async () => {
    const c = await stack.connect('alice@corp.com', { app: 'head' });
    await c.end();
    await stack.server.audit.flushed();
    const res = await fetch(`${stack.adminUrl}/admin/audit/head`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(200);
    const head = (await res.json()) as { seq: number; hash: string; instance: string; available: boolean };
    const last = readAuditDir(stack.auditDir).at(-1) as { seq: number; hash: string; instance: string };
    expect(head).toMatchObject({ seq: last.seq, hash: last.hash, instance: last.instance, available: true });
    expect((await fetch(`${stack.adminUrl}/admin/audit/head`)).status).toBe(401);
    expect((await fetch(`${stack.adminUrl}/admin/audit/head`, { headers: { authorization: `Bearer ${stack.scimToken}` } })).status).toBe(401);
  });
});
