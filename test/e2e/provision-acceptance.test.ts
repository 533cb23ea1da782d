// Per-user provisioning end to end (docs/design.md §7), through rolegate's own SCIM endpoint and proxy:
// the product brief's acceptance test (create -> role visible -> deactivate -> login refused and the role
// cannot log in -> delete -> role gone), sessions as the person's own role, and a pool that never passes
// a connection from one person to another.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SecretBox } from '../../provision/secret-box.js';
import { SCRAM_VERIFIER } from '../../provision/scram-verifier.js';
import { pgInfo, superuserQuery } from '../helpers/postgres.js';
import { PATCH_URN, USER_URN, startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

const KEY = randomBytes(32);
let stack: Stack;

beforeAll(async () => {
  // The pool as shipped: on by default (upstream.pool.idle 20).
  stack = await startStack({ perUser: { secretKey: KEY.toString('base64') } });
  // The groups exist before the tests time anything.
  await stack.provision(`seed-${randomBytes(3).toString('hex')}@corp.example`, ['analysts', 'engineering']);
});
afterAll(async () => stack?.close());

const role = async (name: string) =>
  (await superuserQuery<{ rolcanlogin: boolean; rolpassword: string | null; member_of: string[]; backends: number }>(
    `SELECT a.rolcanlogin, a.rolpassword,
            array(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = a.oid ORDER BY 1) AS member_of,
            (SELECT count(*)::int FROM pg_stat_activity s WHERE s.usesysid = a.oid) AS backends
     FROM pg_authid a WHERE a.rolname = $1`,
    [name],
  )).rows[0];

async function scimJson(path: string, method: string, body: unknown): Promise<{ id: string }> {
  const res = await stack.scim(path, method, body);
  expect(res.status, await res.clone().text()).toBeLessThan(300);
  return res.status === 204 ? { id: '' } : ((await res.json()) as { id: string });
}

/** The person's own secret, as rolegate keeps it (sealed in the store) and uses it. */
async function secretOf(id: string): Promise<{ role: string; secret: string }> {
  const rec = await stack.server.store.personalRoles.get(id);
  if (rec === undefined) throw new Error('no record');
  return { role: rec.roleName, secret: new SecretBox(KEY).open(id, rec.sealedSecret) };
}

function direct(user: string, password: string): pg.Client {
  const info = pgInfo();
  const c = new pg.Client({ host: 'localhost', port: info.port, user, password, database: stack.db.name, ssl: { ca: readFileSync(info.caCertPath, 'utf8') } });
  c.on('error', () => undefined);
  return c;
}

describe('the acceptance test', () => {
  it('create -> role visible -> deactivate -> login refused and the role cannot log in -> delete -> role gone', async () => {
    const name = `accept-${randomBytes(3).toString('hex')}@corp.example`;
    // Create: the role appears in the system tables within a second of the SCIM push.
    const t0 = performance.now();
    const { id } = await scimJson('/Users', 'POST', { schemas: [USER_URN], userName: name, active: true });
    await waitFor(async () => (await role(name))?.rolcanlogin === true, 2_000, 'role visible');
    expect(performance.now() - t0).toBeLessThan(1_000);
    await scimJson(`/Groups/${stack.groupId('analysts')}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'add', path: 'members', value: [{ value: id }] }] });
    await waitFor(async () => (await role(name))?.member_of.length === 1, 2_000, 'granted');
    const visible = await role(name);
    expect(visible).toMatchObject({ rolcanlogin: true, member_of: [stack.roles.reader], backends: 0 });
    expect(visible?.rolpassword).toMatch(SCRAM_VERIFIER);

    // A session logs in as the person's own role, starting as the role of the decision.
    const client = await stack.connect(name);
    expect((await client.query('SELECT session_user, current_user')).rows).toEqual([{ session_user: name, current_user: stack.roles.reader }]);
    expect((await superuserQuery('SELECT usename FROM pg_stat_activity WHERE usename = $1', [name])).rows).toEqual([{ usename: name }]);
    const ended = new Promise<Error & { code?: string }>((resolve) => client.once('error', resolve));

    // Deactivate: the live session ends, NOLOGIN, no grants, no backends.
    await scimJson(`/Users/${id}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active: false } }] });
    expect((await ended).code).toBe('57P01');
    await waitFor(async () => (await role(name))?.rolcanlogin === false && (await role(name))?.backends === 0, 1_000, 'disabled within a second');
    expect(await role(name)).toMatchObject({ rolcanlogin: false, member_of: [], backends: 0 });
    // Login refused through rolegate, and the role cannot log in even with its own secret.
    await expect(stack.connect(name)).rejects.toMatchObject({ code: '28000', message: `user "${name}" is deactivated` });
    const { secret } = await secretOf(id);
    await expect(direct(name, secret).connect()).rejects.toMatchObject({ code: '28000', message: `role "${name}" is not permitted to log in` });

    // Delete: the role is gone.
    const res = await stack.scim(`/Users/${id}`, 'DELETE');
    expect(res.status).toBe(204);
    await waitFor(async () => (await role(name)) === undefined, 5_000, () => JSON.stringify(stack.auditEvents().filter((e) => e.type === 'provisioning').slice(-3)));

    const audit = stack.auditEvents().filter((e) => e.type === 'provisioning' && (e.person as { id: string }).id === id);
    // (A `terminate` comes in between when a backend was still there: rolegate usually ended it first.)
    expect(audit.map((e) => `${String(e.action)}:${String(e.outcome)}`).filter((a) => a !== 'terminate:ok')).toEqual([
      'create:ok', 'grant:ok', 'disable:ok', 'revoke:ok', 'drop:ok',
    ]);
    // No secret in any log line.
    expect(stack.logLines().some((l) => l.includes(secret))).toBe(false);
  });
});

describe('sessions as the person', () => {
  it('user=<role> starts there, SET ROLE reaches only granted roles, and a role not ready is refused with its own message', async () => {
    const name = `multi-${randomBytes(3).toString('hex')}@corp.example`;
    await stack.provision(name, ['engineering']);
    await waitFor(async () => (await role(name))?.member_of.length === 2, 2_000, 'granted');
    const c = await stack.connect(name, { user: stack.roles.writer });
    expect((await c.query('SELECT session_user, current_user')).rows).toEqual([{ session_user: name, current_user: stack.roles.writer }]);
    await c.query(`SET ROLE "${stack.roles.reader}"`);
    await expect(c.query(`SET ROLE "${stack.roles.certRole}"`)).rejects.toMatchObject({ code: '42501' });
    await c.query('RESET ROLE');
    expect((await c.query('SELECT current_user')).rows).toEqual([{ current_user: stack.roles.writer }]);
    await c.end();

    // A role rolegate did not create holds the name: reported, and the login says so.
    const taken = `taken-${randomBytes(3).toString('hex')}@corp.example`;
    await superuserQuery(`CREATE ROLE "${taken}" NOLOGIN`);
    try {
      await stack.provision(taken, ['analysts']);
      await expect(stack.connect(taken)).rejects.toMatchObject({ code: '08006', message: `database role of "${taken}" is not ready` });
      const denied = stack.auditEvents().filter((e) => e.type === 'session.denied').at(-1);
      expect(denied?.reason).toBe('personal_role:conflict');
    } finally {
      await superuserQuery(`DROP ROLE "${taken}"`);
    }
  });

  it('audits the login role, and repairs a grant revoked by hand when a login is refused for it', async () => {
    const name = `heal-${randomBytes(3).toString('hex')}@corp.example`;
    await stack.provision(name, ['engineering']);
    await waitFor(async () => (await role(name))?.member_of.length === 2, 2_000, 'granted');
    const c = await stack.connect(name);
    await c.end();
    const start = stack.auditEvents().filter((e) => e.type === 'session.start').at(-1);
    expect(start).toMatchObject({ role: stack.roles.reader, loginRole: name, person: { userName: name } });

    await superuserQuery(`REVOKE "${stack.roles.writer}" FROM "${name}"`);
    // The server refuses to start the session as the writer; rolegate looks at the person again.
    await expect(stack.connect(name, { user: stack.roles.writer })).rejects.toMatchObject({ code: '08006', message: 'upstream refused the connection' });
    await waitFor(async () => (await role(name))?.member_of.length === 2, 5_000, 'grant repaired');
    const again = await stack.connect(name, { user: stack.roles.writer });
    expect((await again.query('SELECT current_user')).rows).toEqual([{ current_user: stack.roles.writer }]);
    await again.end();
    const repaired = stack.auditEvents().filter((e) => e.type === 'provisioning' && e.action === 'drift_repaired').at(-1);
    expect(repaired).toMatchObject({ step: 'grant', outcome: 'ok', role: name });
  });

  it('a role removed from the config by SIGHUP is revoked from everyone\'s role', async () => {
    const name = `hup-${randomBytes(3).toString('hex')}@corp.example`;
    await stack.provision(name, ['engineering']);
    await waitFor(async () => (await role(name))?.member_of.length === 2, 2_000, 'granted');
    let roles: unknown[] = [];
    await stack.reload((c) => {
      roles = c.roles;
      c.roles = c.roles.filter((r: { role: string }) => r.role !== stack.roles.writer);
    });
    await waitFor(async () => (await role(name))?.member_of.join() === stack.roles.reader, 5_000, 'revoked after reload');
    await stack.reload((c) => {
      c.roles = roles;
    });
    await waitFor(async () => (await role(name))?.member_of.length === 2, 5_000, 'granted again');
    // Turning per-user provisioning off needs a restart: the reload is refused whole.
    await expect(stack.reload((c) => {
      c.provisioning = { mode: 'off' };
      for (const r of c.roles) r.credentials = { password: 'unused-password' };
    })).rejects.toThrow('provisioning.mode changes need a restart');
    const c = await stack.connect(name);
    expect((await c.query('SELECT session_user')).rows).toEqual([{ session_user: name }]);
    await c.end();
  });

  it('the pool never hands one person\'s connection to another, and reuses a person\'s own', async () => {
    const a = `pool-a-${randomBytes(3).toString('hex')}@corp.example`;
    const b = `pool-b-${randomBytes(3).toString('hex')}@corp.example`;
    await stack.provision(a, ['analysts']);
    await stack.provision(b, ['analysts']);
    const pidOf = async (person: string): Promise<{ pid: number; who: string }> => {
      const c = await stack.connect(person);
      const row = (await c.query<{ pid: number; who: string }>('SELECT pg_backend_pid() AS pid, session_user AS who')).rows[0]!;
      await c.end();
      // The goodbye returns the connection to the pool after its confirmed reset.
      await new Promise((r) => setTimeout(r, 100));
      return row;
    };
    const first = await pidOf(a);
    const other = await pidOf(b);
    expect(other.who).toBe(b);
    expect(other.pid).not.toBe(first.pid);
    const again = await pidOf(a);
    expect(again).toEqual(first);
  });

  it('a pooled connection of a person renamed away is never handed to the next person given the old userName', async () => {
    // Regression: the pool key named the login role only. A rename moves a person's role (and the
    // backend the pool keeps for it) to the new name without ending the backend; the next person
    // given the old userName gets a role of that old name, so their logins built the old key and
    // took the first person's backend, logged in as the first person's renamed role.
    const old = `pool-old-${randomBytes(3).toString('hex')}@corp.example`;
    const renamed = `pool-new-${randomBytes(3).toString('hex')}@corp.example`;
    const first = await stack.provision(old, ['analysts']);
    const c = await stack.connect(old);
    const pooled = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    await c.end();
    await waitFor(async () => (await superuserQuery(`SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND query = 'DISCARD ALL' AND state = 'idle'`, [pooled])).rows.length === 1, 2_000, 'pooled');
    await scimJson(`/Users/${first}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', path: 'userName', value: renamed }] });
    await waitFor(async () => (await role(renamed)) !== undefined && (await role(old)) === undefined, 5_000, 'renamed');
    await stack.provision(old, ['analysts']);
    await waitFor(async () => (await role(old))?.member_of.length === 1, 5_000, 'the second person\'s role');
    const next = await stack.connect(old);
    const seen = (await next.query<{ pid: number; who: string }>('SELECT pg_backend_pid() AS pid, session_user AS who')).rows[0]!;
    await next.end();
    expect(seen.who).toBe(old);
    expect(seen.pid).not.toBe(pooled);
  });
});
