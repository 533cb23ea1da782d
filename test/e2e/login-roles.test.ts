// Login path, who becomes which role (docs/design.md §2 steps 5-7): default and requested roles with pg,
// postgres.js and psql, the certificate role, every 28000 refusal with its exact text and audit
// reason, and the startup parameters that reach (or may not reach) the upstream.
import type pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATCH_URN, startStack, USER_URN, type Stack } from '../helpers/stack.js';
import { caPem, conninfo, lastDenied, pgLoginError, psql, withPg } from './login-helpers.js';

let stack: Stack;
let ids: Record<string, string>;

beforeAll(async () => {
  stack = await startStack();
  ids = {
    alice: await stack.provision('alice@corp.com', ['analysts']),
    bob: await stack.provision('bob@corp.com', ['engineering']),
    carol: await stack.provision('carol@corp.com', ['ops']),
    dave: await stack.provision('dave@corp.com', ['engineering'], { active: false }),
    erin: await stack.provision('erin@corp.com', ['engineering']),
    frank: await stack.provision('frank@corp.com', []),
    grace: await stack.provision('grace', ['analysts'], { emails: ['grace@corp.com'] }),
  };
});
afterAll(async () => {
  await stack?.close();
});

const who = 'select current_user as u, session_user as s';

describe('default and requested roles', () => {
  it('pg: the own name picks the least privileged entitled role, in any case', async () => {
    const token = await stack.tokenFor('alice@corp.com');
    for (const user of ['alice@corp.com', 'ALICE@Corp.Com']) {
      const rows = await withPg(stack.pgConfig(user, token), async (c) => (await c.query(who)).rows);
      expect(rows).toEqual([{ u: stack.roles.reader, s: stack.roles.reader }]);
    }
    const start = stack.auditEvents().filter((e) => e['type'] === 'session.start').at(-1)!;
    expect(start).toMatchObject({ requestedUser: 'ALICE@Corp.Com', role: stack.roles.reader, database: stack.db.name, person: { userName: 'alice@corp.com', id: ids.alice } });
  });

  it('pg: the token\'s email matches the directory case-insensitively', async () => {
    const token = await stack.tokenFor('Alice@CORP.com');
    const rows = await withPg(stack.pgConfig('alice@corp.com', token), async (c) => (await c.query(who)).rows);
    expect(rows).toEqual([{ u: stack.roles.reader, s: stack.roles.reader }]);
  });

  it('pg: a requested role the person is entitled to is used as the login role; reader cannot write', async () => {
    const token = await stack.tokenFor('bob@corp.com');
    await withPg(stack.pgConfig(stack.roles.writer, token), async (c) => {
      expect((await c.query(who)).rows).toEqual([{ u: stack.roles.writer, s: stack.roles.writer }]);
      const ins = await c.query("insert into items (name) values ('from-writer') returning name");
      expect(ins.rows).toEqual([{ name: 'from-writer' }]);
    });
    // bob's own name: engineering grants reader first (roles are ordered least privileged first).
    const err = await withPg(stack.pgConfig('bob@corp.com', token), async (c) => {
      expect((await c.query(who)).rows).toEqual([{ u: stack.roles.reader, s: stack.roles.reader }]);
      return c.query("insert into items (name) values ('from-reader')").then(() => undefined, (e: { code?: string; message: string }) => e);
    });
    expect(err).toMatchObject({ code: '42501', message: 'permission denied for table items' });
  });

  it('postgres.js (pipelined extended protocol): default and requested roles', async () => {
    const token = await stack.tokenFor('bob@corp.com');
    const connect = (user: string) =>
      postgres({ host: 'localhost', port: stack.proxyPort, database: stack.db.name, user, pass: token, ssl: { ca: caPem(stack), servername: 'localhost' }, max: 1, onnotice: () => {} });
    const asReader = connect('bob@corp.com');
    try {
      const [row] = await asReader`select current_user as u, session_user as s`;
      expect(row).toEqual({ u: stack.roles.reader, s: stack.roles.reader });
      await expect(asReader`insert into items (name) values (${'pjs-reader'})`).rejects.toMatchObject({ code: '42501' });
    } finally {
      await asReader.end();
    }
    const asWriter = connect(stack.roles.writer);
    try {
      // Several statements in flight at once: postgres.js pipelines Parse/Bind/Execute.
      const results = await Promise.all([
        asWriter`select current_user as u`,
        asWriter`insert into items (name) values (${'pjs-writer'}) returning name`,
        asWriter`select count(*)::int as n from items where name = ${'pjs-writer'}`,
      ]);
      expect(results.map((r) => r[0])).toEqual([{ u: stack.roles.writer }, { name: 'pjs-writer' }, { n: 1 }]);
    } finally {
      await asWriter.end();
    }
  });

  it('psql: requested writer role inserts; the default reader role gets 42501', async () => {
    const token = await stack.tokenFor('bob@corp.com');
    const asWriter = await psql(conninfo(stack, stack.roles.writer), token, ['-Atc', "insert into items (name) values ('psql') returning current_user, session_user"]);
    expect(asWriter).toMatchObject({ exitCode: 0, stderr: '' });
    expect(asWriter.stdout.split('\n')[0]).toBe(`${stack.roles.writer}|${stack.roles.writer}`);
    const asReader = await psql(conninfo(stack, 'Bob@Corp.com'), token, ['-v', 'VERBOSITY=verbose', '-Atc', "insert into items (name) values ('psql-reader')"]);
    expect(asReader.exitCode).not.toBe(0);
    expect(asReader.stderr).toContain('ERROR:  42501: permission denied for table items');
  });

  it('a person found by email (userName differs from the token\'s email) logs in under either name', async () => {
    const token = await stack.tokenFor('grace@corp.com');
    for (const user of ['grace', 'grace@corp.com', 'GRACE']) {
      const rows = await withPg(stack.pgConfig(user, token), async (c) => (await c.query(who)).rows);
      expect(rows).toEqual([{ u: stack.roles.reader, s: stack.roles.reader }]);
    }
    // Refusals name the person by userName.
    expect(await pgLoginError(stack.pgConfig(stack.roles.writer, token))).toEqual({ code: '28000', message: `"grace" may not use role "${stack.roles.writer}"` });
  });

  it('the TLS client-certificate role works through the proxy', async () => {
    const token = await stack.tokenFor('carol@corp.com');
    const rows = await withPg(stack.pgConfig('carol@corp.com', token), async (c) => (await c.query(`${who}, (select count(*)::int from items) as n`)).rows);
    expect(rows[0]).toMatchObject({ u: stack.roles.certRole, s: stack.roles.certRole });
    expect(rows[0].n).toBeGreaterThanOrEqual(2);
    const r = await psql(conninfo(stack, stack.roles.certRole), token, ['-Atc', 'select current_user']);
    expect(r).toMatchObject({ exitCode: 0, stdout: `${stack.roles.certRole}\n` });
  });
});

describe('refusals (FATAL 28000, reason in the audit log)', () => {
  it('another person\'s name as user', async () => {
    const token = await stack.tokenFor('alice@corp.com');
    expect(await pgLoginError(stack.pgConfig('bob@corp.com', token))).toEqual({ code: '28000', message: 'token does not belong to "bob@corp.com"' });
    expect(lastDenied(stack)).toMatchObject({ reason: 'wrong_person', sqlstate: '28000', requestedUser: 'bob@corp.com', database: stack.db.name });
  });

  it('a role the person is not entitled to', async () => {
    const token = await stack.tokenFor('alice@corp.com');
    expect(await pgLoginError(stack.pgConfig(stack.roles.writer, token))).toEqual({
      code: '28000',
      message: `"alice@corp.com" may not use role "${stack.roles.writer}"`,
    });
    expect(lastDenied(stack)).toMatchObject({ reason: 'role_not_entitled', requestedUser: stack.roles.writer });
    // The same through psql, which prints the server's text after "FATAL:".
    const r = await psql(conninfo(stack, stack.roles.certRole), token, ['-Atc', 'select 1']);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toContain(`FATAL:  "alice@corp.com" may not use role "${stack.roles.certRole}"`);
  });

  it('no entitlement for the database', async () => {
    const token = await stack.tokenFor('alice@corp.com');
    expect(await pgLoginError(stack.pgConfig('alice@corp.com', token, { database: 'postgres' }))).toEqual({
      code: '28000',
      message: 'no role grants "alice@corp.com" access to database "postgres"',
    });
    expect(lastDenied(stack)).toMatchObject({ reason: 'no_entitlement', database: 'postgres' });
    // In no group at all: no role grants anything, whichever database.
    const frank = await stack.tokenFor('frank@corp.com');
    expect(await pgLoginError(stack.pgConfig('frank@corp.com', frank))).toEqual({
      code: '28000',
      message: `no role grants "frank@corp.com" access to database "${stack.db.name}"`,
    });
  });

  it('unknown person', async () => {
    const token = await stack.tokenFor('nobody@corp.com');
    expect(await pgLoginError(stack.pgConfig('nobody@corp.com', token))).toEqual({ code: '28000', message: 'user "nobody@corp.com" is not provisioned' });
    expect(lastDenied(stack)).toMatchObject({ reason: 'not_provisioned', requestedUser: 'nobody@corp.com' });
    // postgres.js reads the same FATAL.
    const sql = postgres({ host: 'localhost', port: stack.proxyPort, database: stack.db.name, user: 'nobody@corp.com', pass: token, ssl: { ca: caPem(stack), servername: 'localhost' }, max: 1 });
    try {
      await expect(sql`select 1`).rejects.toMatchObject({ code: '28000', message: 'user "nobody@corp.com" is not provisioned' });
    } finally {
      await sql.end();
    }
  });

  it('deactivated person: provisioned inactive, and deactivated by a SCIM PATCH', async () => {
    const dave = await stack.tokenFor('dave@corp.com');
    expect(await pgLoginError(stack.pgConfig('dave@corp.com', dave))).toEqual({ code: '28000', message: 'user "dave@corp.com" is deactivated' });
    expect(lastDenied(stack)).toMatchObject({ reason: 'deactivated' });

    const erin = await stack.tokenFor('erin@corp.com');
    const rows = await withPg(stack.pgConfig('erin@corp.com', erin), async (c) => (await c.query('select current_user as u')).rows);
    expect(rows).toEqual([{ u: stack.roles.reader }]);
    const res = await stack.scim(`/Users/${ids.erin}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', path: 'active', value: false }] });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { schemas: string[]; active: boolean })).toMatchObject({ schemas: [USER_URN], active: false });
    // The same, still valid token is refused now.
    expect(await pgLoginError(stack.pgConfig('erin@corp.com', erin))).toEqual({ code: '28000', message: 'user "erin@corp.com" is deactivated' });
  });
});

describe('a SCIM PUT without active does not re-enable a deactivated user (D32)', () => {
  it('the person still cannot log in after an Okta-style full replace', async () => {
    const id = await stack.provision('pat@corp.com', ['analysts']);
    const off = await stack.scim(`/Users/${id}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active: false } }] });
    expect(off.status).toBe(200);
    const put = await stack.scim(`/Users/${id}`, 'PUT', { schemas: [USER_URN], userName: 'pat@corp.com', displayName: 'Pat', emails: [{ value: 'pat@corp.com', type: 'work' }] });
    expect(put.status).toBe(200);
    expect(((await put.json()) as { active: boolean; displayName: string })).toMatchObject({ active: false, displayName: 'Pat' });
    const token = await stack.tokenFor('pat@corp.com');
    expect(await pgLoginError(stack.pgConfig('pat@corp.com', token))).toEqual({ code: '28000', message: 'user "pat@corp.com" is deactivated' });
    expect(lastDenied(stack)).toMatchObject({ reason: 'deactivated' });
  });
});

describe('upstream refusal', () => {
  it('a database the upstream does not have: 08006, one line, the server\'s text only in the log', async () => {
    // ops grants the certificate role on every database ("*"), so rolegate lets the login through.
    const token = await stack.tokenFor('carol@corp.com');
    expect(await pgLoginError(stack.pgConfig('carol@corp.com', token, { database: 'no_such_db_e2e' }))).toEqual({
      code: '08006',
      message: 'upstream refused the connection',
    });
    expect(lastDenied(stack)).toMatchObject({ reason: 'upstream:UPSTREAM_REFUSED', sqlstate: '08006', database: 'no_such_db_e2e' });
    expect(stack.logLines().some((l) => l.includes('upstream login failed') && l.includes('3D000'))).toBe(true);
  });
});

describe('startup parameters', () => {
  it('options=-c statement_timeout is applied upstream (pg and psql)', async () => {
    const token = await stack.tokenFor('alice@corp.com');
    const rows = await withPg(stack.pgConfig('alice@corp.com', token, { options: '-c statement_timeout=1234' }), async (c) => (await c.query('show statement_timeout')).rows);
    expect(rows).toEqual([{ statement_timeout: '1234ms' }]);
    const r = await psql(conninfo(stack, 'alice@corp.com', "options='-c statement_timeout=4321'"), token, ['-Atc', 'show statement_timeout']);
    expect(r).toMatchObject({ exitCode: 0, stdout: '4321ms\n' });
  });

  it('a disallowed option is refused with 42501, not silently dropped', async () => {
    const token = await stack.tokenFor('alice@corp.com');
    expect(await pgLoginError(stack.pgConfig('alice@corp.com', token, { options: '-c work_mem=64kB' }))).toEqual({
      code: '42501',
      message: 'option "work_mem" is not allowed through rolegate',
    });
    expect(lastDenied(stack)).toMatchObject({ reason: 'option_not_allowed', sqlstate: '42501' });
    // Anything but -c settings (here a postgres command-line switch) is refused too.
    expect(await pgLoginError(stack.pgConfig('alice@corp.com', token, { options: '-B 10' }))).toEqual({
      code: '42501',
      message: 'only "-c name=value" settings are allowed in options, not "-B"',
    });
  });

  it('a replication connection is refused with 0A000', async () => {
    const token = await stack.tokenFor('alice@corp.com');
    // pg forwards `replication` as a startup parameter; @types/pg does not list it.
    const replication = { replication: 'database' } as Partial<pg.ClientConfig>;
    expect(await pgLoginError(stack.pgConfig('alice@corp.com', token, replication))).toEqual({
      code: '0A000',
      message: 'replication connections are not supported through rolegate',
    });
  });

  it('application_name reaches pg_stat_activity and the audit log', async () => {
    const token = await stack.tokenFor('alice@corp.com');
    const rows = await withPg(stack.pgConfig('alice@corp.com', token, { application_name: 'e2e-login-app' }), async (c) =>
      (await c.query('select application_name from pg_stat_activity where pid = pg_backend_pid()')).rows,
    );
    expect(rows).toEqual([{ application_name: 'e2e-login-app' }]);
    const start = stack.auditEvents().filter((e) => e['type'] === 'session.start').at(-1);
    expect(start).toMatchObject({ application: 'e2e-login-app' });
    const r = await psql(conninfo(stack, 'alice@corp.com', 'application_name=e2e-psql'), token, ['-Atc', 'select application_name from pg_stat_activity where pid = pg_backend_pid()']);
    expect(r).toMatchObject({ exitCode: 0, stdout: 'e2e-psql\n' });
  });
});
