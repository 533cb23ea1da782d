// `rolegate provision check` and `rolegate serve` with per-user provisioning, as real processes on the
// suite's PostgreSQL (docs/design.md §3 and §7): the check prints every difference and changes
// nothing (exit 1 if any, 0 in step, 2 without per-user mode), and serve names a missing privilege.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, startServe } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { createTestDatabase, pgUrl, superuserQuery, type TestDatabase } from '../helpers/postgres.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

const TOKEN = randomBytes(24).toString('base64url');
const KEY = randomBytes(32).toString('base64');
const tag = `c${randomBytes(3).toString('hex')}`;
const reader = `${tag}_reader`;
const writer = `${tag}_writer`;
const prov = { name: `${tag}_prov`, password: randomBytes(12).toString('hex') };
const weak = { name: `${tag}_weak`, password: randomBytes(12).toString('hex') };
const people = [`ana-${tag}@corp.example`, `ben-${tag}@corp.example`, `pg_cid-${tag}`];

let dir: TempDir;
let db: TestDatabase;
beforeAll(async () => {
  dir = await tempDir();
  db = await createTestDatabase('provcli');
  await superuserQuery(`CREATE ROLE "${reader}" NOLOGIN; CREATE ROLE "${writer}" NOLOGIN`);
  await superuserQuery(`CREATE ROLE "${prov.name}" LOGIN CREATEROLE PASSWORD '${prov.password}'`);
  await superuserQuery(`GRANT "${reader}", "${writer}" TO "${prov.name}" WITH ADMIN OPTION; GRANT pg_signal_backend TO "${prov.name}"`);
  await superuserQuery(`CREATE ROLE "${weak.name}" LOGIN PASSWORD '${weak.password}'`);
});
afterAll(async () => {
  await db?.drop();
  const marked = await superuserQuery<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE rolname LIKE $1 OR rolname LIKE $2`, [`%-${tag}%`, `%${tag}_%`]);
  for (const { rolname } of marked.rows) await superuserQuery(`DROP ROLE IF EXISTS "${rolname}"`).catch(() => undefined);
  await dir?.cleanup();
});

async function config(name: string, login: { name: string; password: string }, adminPort: number, mode = 'per-user'): Promise<string> {
  const file = join(dir.path, `${name}.yaml`);
  // Roles carry credentials only when sessions log in as them (provisioning off).
  const credentials = mode === 'off' ? ', credentials: { password: unused }' : '';
  await writeFile(file, `
proxy: { listen: "127.0.0.1:0", allowPlaintext: true }
upstream: { host: 127.0.0.1, tls: { mode: disable } }
oidc: { issuer: "https://127.0.0.1:1/", audience: rolegate }
roles:
  - { role: ${reader}, groups: [analysts, engineering], databases: [${db.name}]${credentials} }
  - { role: ${writer}, groups: [engineering], databases: [${db.name}]${credentials} }
directory: { store: "sqlite:${join(dir.path, 'directory.db')}" }
provisioning:
  mode: ${mode}
  adminUrl: "${pgUrl({ database: db.name, user: login.name, password: login.password })}"
  secretKey: "\${SECRET_KEY}"
  databases: [${db.name}]
scim: { tokens: ["\${SCIM_TOKEN}"] }
admin: { listen: "127.0.0.1:${adminPort}" }
log: { level: warn }
`);
  return file;
}

const env = { SCIM_TOKEN: TOKEN, SECRET_KEY: KEY };

describe('rolegate provision check', () => {
  it('is in step after serve provisioned everyone, then prints each difference made by hand and changes nothing', async () => {
    const port = await freePort();
    const file = await config('check', prov, port);
    const base = `http://127.0.0.1:${port}`;
    const srv = await startServe(file, `${base}/healthz`, env);
    try {
      const scim = (path: string, method: string, body: unknown) =>
        fetch(`${base}/scim/v2${path}`, { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/scim+json' }, body: JSON.stringify(body) });
      const ids: string[] = [];
      for (const userName of people) {
        const res = await scim('/Users', 'POST', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName, active: true });
        ids.push(((await res.json()) as { id: string }).id);
      }
      await scim('/Groups', 'POST', { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'analysts', members: ids.map((value) => ({ value })) });
      await waitFor(async () => (await superuserQuery(`SELECT count(*)::int AS n FROM pg_auth_members WHERE roleid = $1::regrole AND member <> $2::regrole`, [reader, prov.name])).rows[0]?.n === 3, 10_000, () => srv.output());
    } finally {
      srv.child.kill('SIGTERM');
      await srv.exited;
    }

    const inStep = await runCli(['provision', 'check', '--config', file], env);
    expect(inStep.stderr).toBe('');
    expect(inStep.code).toBe(0);
    const mapped = (await superuserQuery<{ rolname: string }>(`SELECT rolname FROM pg_roles WHERE rolname LIKE $1`, [`pg-cid-${tag}%`])).rows[0]?.rolname;
    expect(mapped).toMatch(new RegExp(`^pg-cid-${tag}_[a-z2-7]{10}$`));
    expect(inStep.stdout).toBe(
      `name: userName "pg_cid-${tag}" has role "${mapped}" (it starts with pg_ (reserved for PostgreSQL))\n` +
        'in step: 3 people, 1 mapped names, no differences\n',
    );

    await superuserQuery(`GRANT "${writer}" TO "${people[0]}"; DROP ROLE "${people[1]}"`);
    const drift = await runCli(['provision', 'check', '--config', file], env);
    expect(drift.code).toBe(1);
    expect(drift.stdout.split('\n')).toEqual(expect.arrayContaining([
      `${people[0]}: extra grant: "${people[0]}" is a member of "${writer}", which the person's groups do not grant`,
      `${people[1]}: missing role "${people[1]}"`,
      '2 people differ of 3, 0 missing privileges',
    ]));
    // Nothing was repaired.
    expect((await superuserQuery(`SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1`, [people[1]])).rows[0]?.n).toBe(0);
    expect((await superuserQuery(`SELECT pg_has_role($1, $2, 'MEMBER') AS m`, [people[0], writer])).rows[0]?.m).toBe(true);
  });

  it('without per-user provisioning there is nothing to compare (exit 2)', async () => {
    const file = await config('off', prov, await freePort(), 'off');
    const r = await runCli(['provision', 'check', '--config', file], env);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(`rolegate: ${file}: provisioning.mode is not per-user: there is nothing to compare\n`);
  });

  it('needs "check" and --config', async () => {
    expect((await runCli(['provision', 'fix'])).stderr).toContain('unknown command "provision fix": did you mean "provision check"?');
    expect((await runCli(['provision', 'check'])).code).toBe(2);
  });
});

describe('rolegate serve with per-user provisioning', () => {
  it('does not start when the provisioning login lacks privileges, and names each one', async () => {
    const file = await config('weak', weak, await freePort());
    const r = await runCli(['serve', '--config', file], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `rolegate: cannot start: provisioning login lacks CREATEROLE; provisioning login lacks membership in pg_signal_backend; ` +
        `provisioning login lacks ADMIN OPTION on role "${reader}"; provisioning login lacks ADMIN OPTION on role "${writer}"\n`,
    );
  });

  it('does not start when the database refuses the provisioning login', async () => {
    const file = await config('refused', { name: weak.name, password: 'wrong-password' }, await freePort());
    const r = await runCli(['serve', '--config', file], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^rolegate: cannot start: the database refused the provisioning login: password authentication failed for user/);
    expect(r.stderr).not.toContain('wrong-password');
  });
});
