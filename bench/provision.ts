// Per-user provisioning benchmark (issue 11 figures) on a PostgreSQL of its own: SCIM create to role
// visible in pg_roles through a real `rolegate serve` (p50/p99 over 100 people), then with the
// provisioner in this process: provisioning N people into an empty database, and one full
// reconciliation of N people with 1% drift (and with none, for comparison).
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { startLocalPostgres } from '../demo/local-postgres.js';
import { createLogger } from '../lib/log.js';
import { ProvisioningEngine } from '../provision/engine.js';
import { SecretBox } from '../provision/secret-box.js';
import { TargetDatabase } from '../provision/target.js';
import { DirectoryIndex } from '../scim/directory-index.js';
import { openStore } from '../scim/store/open.js';
import { roleGrants, storeDirectory } from '../server/provisioning.js';
import { closeAgent, jsonRequest, percentile } from './http.js';
import type { BenchRow } from './scim.js';
import { startServeProcess } from './serve-process.js';

export interface ProvisionBenchOptions {
  dir: string;
  freePort: () => Promise<number>;
  /** People for the bulk figures (10,000 by default). */
  people: number;
  /** Creates timed one by one through SCIM (100 by default). */
  creates: number;
}

const TOKEN = randomBytes(24).toString('base64url');

export async function runProvisionBench(opts: ProvisionBenchOptions): Promise<BenchRow[]> {
  const pgDir = join(opts.dir, 'pg');
  await mkdir(pgDir);
  const superPassword = randomBytes(12).toString('hex');
  const port = await opts.freePort();
  const cluster = await startLocalPostgres({
    dir: pgDir,
    port,
    superuserPassword: superPassword,
    hba: ['host all all 127.0.0.1/32 scram-sha-256'],
    settings: { max_connections: '100' },
  });
  const url = (user: string, password: string, database = 'bench') => `postgres://${user}:${password}@127.0.0.1:${port}/${database}?sslmode=disable`;
  const su = new pg.Client({ connectionString: url('postgres', superPassword, 'postgres') });
  await su.connect();
  const rows: BenchRow[] = [];
  try {
    const prov = randomBytes(12).toString('hex');
    await su.query(`CREATE DATABASE bench`);
    await su.query(`CREATE ROLE bench_reader NOLOGIN; CREATE ROLE bench_writer NOLOGIN`);
    await su.query(`CREATE ROLE bench_provisioner LOGIN CREATEROLE PASSWORD '${prov}'`);
    await su.query(`GRANT bench_reader, bench_writer TO bench_provisioner WITH ADMIN OPTION; GRANT pg_signal_backend TO bench_provisioner`);
    rows.push(...(await createToVisible(opts, su, url('bench_provisioner', prov), port)));
    rows.push(...(await bulk(opts, su, url('bench_provisioner', prov))));
  } finally {
    await su.end().catch(() => undefined);
    await cluster.stop();
  }
  return rows;
}

/** SCIM POST of an active user in a granting group, until pg_roles shows the role with its grant. */
async function createToVisible(opts: ProvisionBenchOptions, su: pg.Client, adminUrl: string, pgPort: number): Promise<BenchRow[]> {
  const adminPort = await opts.freePort();
  const config = `
proxy: { listen: "127.0.0.1:0", allowPlaintext: true }
upstream: { host: 127.0.0.1, port: ${pgPort}, tls: { mode: disable } }
oidc: { issuer: "https://127.0.0.1:1/", audience: rolegate }
roles: [{ role: bench_reader, groups: [readers], databases: [bench] }]
directory: { store: "sqlite:${join(opts.dir, 'directory.db')}" }
provisioning: { mode: per-user, adminUrl: "${adminUrl}", secretKey: "${randomBytes(32).toString('base64')}", databases: [bench] }
scim: { tokens: ["\${BENCH_SCIM_TOKEN}"] }
admin: { listen: "127.0.0.1:${adminPort}" }
log: { level: warn }
`;
  const server = await startServeProcess(opts.dir, config, adminPort, { BENCH_SCIM_TOKEN: TOKEN });
  const scim = `${server.adminUrl}/scim/v2`;
  try {
    const group = await jsonRequest(`${scim}/Groups`, 'POST', TOKEN, { schemas: ['urn:ietf:params:scim:schemas:core:2.0:Group'], displayName: 'readers' });
    const groupId = (group.body as { id: string }).id;
    const times: number[] = [];
    for (let i = 0; i < opts.creates; i++) {
      const name = `visible-${i}@corp.example`;
      const t0 = performance.now();
      const res = await jsonRequest(`${scim}/Users`, 'POST', TOKEN, { schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'], userName: name, active: true });
      if (res.status !== 201) throw new Error(`create ${name}: HTTP ${res.status}`);
      // The role exists with LOGIN as soon as the user does; the group's grant is the next SCIM write.
      for (;;) {
        const found = await su.query('SELECT 1 FROM pg_roles WHERE rolname = $1 AND rolcanlogin', [name]);
        if (found.rowCount === 1) break;
        if (performance.now() - t0 > 10_000) throw new Error(`role ${name} not visible after 10 s`);
        await new Promise((r) => setTimeout(r, 2));
      }
      times.push(performance.now() - t0);
      await jsonRequest(`${scim}/Groups/${groupId}`, 'PATCH', TOKEN, {
        schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
        Operations: [{ op: 'add', path: 'members', value: [{ value: (res.body as { id: string }).id }] }],
      });
    }
    times.sort((a, b) => a - b);
    return [
      { name: `SCIM create to role visible in pg_roles, p50 (${opts.creates} people)`, value: percentile(times, 50), unit: 'ms' },
      { name: `SCIM create to role visible in pg_roles, p99 (${opts.creates} people)`, value: percentile(times, 99), unit: 'ms', target: { op: '<=', limit: 1000 } },
    ];
  } finally {
    closeAgent();
    await server.stop();
  }
}

/** N people into an empty database, then full reconciliations with 1% drift and with none. */
async function bulk(opts: ProvisionBenchOptions, su: pg.Client, adminUrl: string): Promise<BenchRow[]> {
  const store = await openStore('sqlite::memory:');
  const ids: string[] = [];
  for (let i = 0; i < opts.people; i++) ids.push((await store.createUser({ userName: `bulk-${i}@corp.example`, active: true })).id);
  await store.createGroup({ displayName: 'readers' }, ids.map((value) => ({ value })));
  const index = await DirectoryIndex.load(store);
  const failures: string[] = [];
  const engine = new ProvisioningEngine({
    target: new TargetDatabase(adminUrl, { onBackgroundError: () => undefined }),
    directory: storeDirectory(store, index),
    records: store.personalRoles,
    grants: roleGrants(() => [{ role: 'bench_reader', groups: ['readers'], databases: ['bench'] }]),
    box: new SecretBox(randomBytes(32)),
    settings: { rolePrefix: '', ownedBy: undefined, databases: ['bench'], reconcileEveryMs: 3_600_000 },
    audit: (e) => {
      if (e.outcome !== 'ok') failures.push(`${e.role}: ${e.detail}`);
    },
    logger: createLogger('warn'),
  });
  const rows: BenchRow[] = [];
  try {
    let t0 = performance.now();
    await engine.start();
    await engine.idle();
    const provisionS = (performance.now() - t0) / 1000;
    const made = await su.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_roles WHERE rolname LIKE 'bulk-%' AND rolcanlogin`);
    if (made.rows[0]?.n !== opts.people || failures.length > 0) throw new Error(`provisioned ${made.rows[0]?.n} of ${opts.people}: ${failures.slice(0, 3).join('; ')}`);
    rows.push({ name: `provision ${opts.people.toLocaleString('en')} people into an empty database`, value: provisionS, unit: 's' });

    t0 = performance.now();
    await engine.reconcile('schedule');
    await engine.idle();
    rows.push({ name: `full reconciliation, ${opts.people.toLocaleString('en')} people, no drift`, value: (performance.now() - t0) / 1000, unit: 's' });

    // 1% drift, in the shapes the reconciler repairs: a grant made by hand, a role dropped by hand.
    const drifted = Math.max(2, Math.round(opts.people / 100));
    for (let i = 0; i < drifted; i++) {
      const name = `bulk-${i * Math.floor(opts.people / drifted)}@corp.example`;
      if (i % 2 === 0) await su.query(`GRANT bench_writer TO "${name}"`);
      else await su.query(`DROP ROLE "${name}"`);
    }
    t0 = performance.now();
    await engine.reconcile('schedule');
    await engine.idle();
    rows.push({ name: `full reconciliation, ${opts.people.toLocaleString('en')} people, 1% drift (${drifted} repaired)`, value: (performance.now() - t0) / 1000, unit: 's' });
    const extra = await su.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_auth_members WHERE roleid = 'bench_writer'::regrole AND member <> 'bench_provisioner'::regrole`);
    const back = await su.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_roles WHERE rolname LIKE 'bulk-%'`);
    if (extra.rows[0]?.n !== 0 || back.rows[0]?.n !== opts.people || failures.length > 0) {
      throw new Error(`drift not repaired: ${extra.rows[0]?.n} extra grants, ${back.rows[0]?.n} roles; ${failures.slice(0, 3).join('; ')}`);
    }
  } finally {
    await engine.close();
    index.close();
    await store.close();
  }
  return rows;
}
