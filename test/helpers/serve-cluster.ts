// Several real `rolegate serve` processes on one PostgreSQL directory store (docs/design.md §8): the
// run's PostgreSQL as their upstream (roles and a database made for the test file), a development OIDC
// issuer, and one store database that every instance shares (a fresh one on the run's cluster, or a
// store URL the test brings, e.g. a private cluster it stops and starts).
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { DirectoryIndex } from '../../scim/directory-index.js';
import { openStore } from '../../scim/store/open.js';
import { startTestIssuer, type TestIssuer } from '../auth/issuer-fixture.js';
import { startServe, type ServeHandle } from './cli.js';
import { freePort } from './ports.js';
import { createTestDatabase, pgInfo, superuserQuery, type TestDatabase } from './postgres.js';
import { GROUP_URN, PATCH_URN, USER_URN, readAuditDir } from './stack.js';
import { tempDir, type TempDir } from './tmp.js';
import { waitFor } from './wait.js';

export { GROUP_URN, PATCH_URN, USER_URN };

/** What GET /admin/directory answers. */
export interface DirectoryViewJson {
  instance: string;
  store: string;
  current: boolean;
  reason?: string;
  position: string;
  persons: number;
  groups: number;
  memberships: number;
  digest: string;
}

export interface SessionJson {
  id: string;
  person: string;
  role: string;
  database: string;
  statements: number;
  instance: string;
  client: { address: string; port: number };
}

export interface Instance {
  readonly name: string;
  readonly proxyPort: number;
  readonly adminUrl: string;
  /** The running process (replaced by `restart`). */
  readonly serve: ServeHandle;
  scim(path: string, method?: string, body?: unknown): Promise<Response>;
  admin(path: string, method?: string): Promise<Response>;
  directory(): Promise<DirectoryViewJson>;
  /** One unlabelled series of this instance's /metrics (NaN when absent). */
  metric(name: string): Promise<number>;
  /** A connected node-postgres client through this instance, with a fresh token for `email`. */
  connect(email: string, opts?: { app?: string }): Promise<pg.Client>;
  /** The audit events this instance wrote to its own audit files so far, in order. */
  auditEvents(): Record<string, unknown>[];
  /** Starts the process again with the same configuration (after it exited). */
  restart(): Promise<void>;
}

export interface ServeCluster {
  readonly instances: readonly Instance[];
  /** The upstream database's name (on the run's cluster). */
  readonly database: string;
  readonly roles: { readonly reader: string; readonly writer: string };
  readonly storeUrl: string;
  tokenFor(email: string): Promise<string>;
  /** Creates an active SCIM user through `via` and adds it to the named groups (created on demand). */
  provision(via: Instance, userName: string, groups: string[]): Promise<string>;
  groupId(name: string): string | undefined;
  /** The digest of a directory index loaded afresh from the store, in this process. */
  freshDigest(): Promise<string>;
  /** Waits until every running instance is current and holds exactly what a fresh load holds. */
  expectInStep(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export const ADMIN_TOKEN = 'cluster-admin-token-0123456789abcdef';

export interface ServeClusterOptions {
  instances: number;
  /** The shared store; default: a fresh database on the run's cluster. */
  storeUrl?: string;
  /** `directory.heartbeat`; default 200ms, so a dead instance expires within a second. */
  heartbeat?: string;
  /** Extra top-level YAML appended to every instance's configuration. */
  extraYaml?: string;
  /** Extra keys of the `proxy` section (flow style, e.g. `workers: 2`). */
  proxyYaml?: string;
}

/** Starts `opts.instances` serve processes on one store; each is ready (/readyz 200) when this resolves. */
export async function startServeCluster(opts: ServeClusterOptions): Promise<ServeCluster> {
  const info = pgInfo();
  const dir: TempDir = await tempDir('rolegate-cluster-');
  const suffix = randomBytes(4).toString('hex');
  const roles = { reader: `rg_${suffix}_reader`, writer: `rg_${suffix}_writer` };
  const passwords = { reader: randomBytes(12).toString('hex'), writer: randomBytes(12).toString('hex') };
  const upstream = await createTestDatabase('cluster_up');
  await superuserQuery(`CREATE ROLE "${roles.reader}" LOGIN PASSWORD '${passwords.reader}'`);
  await superuserQuery(`CREATE ROLE "${roles.writer}" LOGIN PASSWORD '${passwords.writer}'`);
  await superuserQuery(`GRANT CONNECT ON DATABASE "${upstream.name}" TO "${roles.reader}", "${roles.writer}"`);
  const storeDb: TestDatabase | undefined = opts.storeUrl === undefined ? await createTestDatabase('cluster_store') : undefined;
  const storeUrl = storeDb?.url ?? opts.storeUrl ?? '';
  const issuer: TestIssuer = await startTestIssuer();
  const issuerCa = join(dir.path, 'issuer-ca.crt');
  await writeFile(issuerCa, issuer.ca);
  const scimToken = randomBytes(24).toString('base64url');
  const groups = new Map<string, string>();

  const instances: Instance[] = [];
  for (let i = 0; i < opts.instances; i++) {
    const name = `i${i + 1}-${suffix}`;
    const [proxyPort, adminPort] = [await freePort(), await freePort()];
    const file = join(dir.path, `${name}.yaml`);
    await writeFile(file, `
proxy: { listen: "127.0.0.1:${proxyPort}", allowPlaintext: true, drainTimeout: 1s${opts.proxyYaml === undefined ? '' : `, ${opts.proxyYaml}`} }
upstream: { host: 127.0.0.1, port: ${info.port}, tls: { mode: disable } }
oidc: { issuer: "${issuer.issuer.issuer}", audience: rolegate, ca: "${issuerCa}", algorithms: [ES256, RS256] }
directory: { store: "${storeUrl}", heartbeat: ${opts.heartbeat ?? '200ms'} }
roles:
  - { role: ${roles.reader}, groups: [analysts, engineering], databases: ["${upstream.name}"], credentials: { password: "${passwords.reader}" } }
  - { role: ${roles.writer}, groups: [engineering], databases: ["${upstream.name}"], credentials: { password: "${passwords.writer}" } }
scim: { tokens: ["${scimToken}"] }
admin: { listen: "127.0.0.1:${adminPort}", tokens: ["${ADMIN_TOKEN}"] }
audit: { file: "audit-${name}/rolegate.jsonl" }
log: { level: info }
${opts.extraYaml ?? ''}`);
    const adminUrl = `http://127.0.0.1:${adminPort}`;
    const env = { ROLEGATE_INSTANCE: name };
    let serve: ServeHandle | undefined;
    const instance: Instance = {
      name,
      proxyPort,
      adminUrl,
      get serve(): ServeHandle {
        if (serve === undefined) throw new Error(`${name} was never started`);
        return serve;
      },
      scim: (path, method = 'GET', body) =>
        fetch(`${adminUrl}/scim/v2${path}`, {
          method,
          headers: { authorization: `Bearer ${scimToken}`, ...(body === undefined ? {} : { 'content-type': 'application/scim+json' }) },
          body: body === undefined ? undefined : JSON.stringify(body),
        }),
      admin: (path, method = 'GET') => fetch(`${adminUrl}/admin${path}`, { method, headers: { authorization: `Bearer ${ADMIN_TOKEN}` } }),
      directory: async () => (await (await instance.admin('/directory')).json()) as DirectoryViewJson,
      metric: async (name) => {
        const text = await (await fetch(`${instance.adminUrl}/metrics`)).text();
        return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      },
      async connect(email, o = {}) {
        const client = new pg.Client({
          host: '127.0.0.1',
          port: proxyPort,
          user: email,
          password: await issuer.issuer.tokenFor(email),
          database: upstream.name,
          ssl: false,
          ...(o.app === undefined ? {} : { application_name: o.app }),
        });
        client.on('error', () => undefined);
        await client.connect();
        return client;
      },
      auditEvents: () => readAuditDir(join(dir.path, `audit-${name}`)),
      async restart() {
        serve = await startServe(file, `${adminUrl}/readyz`, env);
      },
    };
    instances.push(instance);
  }
  try {
    await Promise.all(instances.map((i) => i.restart()));
  } catch (err) {
    for (const i of instances) {
      try {
        i.serve.child.kill('SIGKILL');
      } catch {
        // never started
      }
    }
    throw err;
  }

  async function ensureGroup(via: Instance, name: string): Promise<string> {
    const known = groups.get(name);
    if (known !== undefined) return known;
    const res = await via.scim('/Groups', 'POST', { schemas: [GROUP_URN], displayName: name });
    if (res.status !== 201) throw new Error(`create group ${name}: ${res.status} ${await res.text()}`);
    const id = ((await res.json()) as { id: string }).id;
    groups.set(name, id);
    return id;
  }

  const cluster: ServeCluster = {
    instances,
    database: upstream.name,
    roles,
    storeUrl,
    tokenFor: (email) => issuer.issuer.tokenFor(email),
    async provision(via, userName, groupNames) {
      const res = await via.scim('/Users', 'POST', { schemas: [USER_URN], userName, active: true });
      if (res.status !== 201) throw new Error(`provision ${userName}: ${res.status} ${await res.text()}`);
      const id = ((await res.json()) as { id: string }).id;
      for (const g of groupNames) {
        const gid = await ensureGroup(via, g);
        const patch = await via.scim(`/Groups/${gid}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'add', path: 'members', value: [{ value: id }] }] });
        if (patch.status !== 200 && patch.status !== 204) throw new Error(`add ${userName} to ${g}: ${patch.status}`);
      }
      return id;
    },
    groupId: (name) => groups.get(name),
    async freshDigest() {
      const store = await openStore(storeUrl);
      try {
        const index = await DirectoryIndex.load(store);
        return await index.digest();
      } finally {
        await store.close();
      }
    },
    async expectInStep(timeoutMs = 10_000) {
      const running = instances.filter((i) => i.serve.child.exitCode === null && i.serve.child.signalCode === null);
      let last: DirectoryViewJson[] = [];
      let fresh = '';
      await waitFor(async () => {
        fresh = await cluster.freshDigest();
        last = await Promise.all(running.map((i) => i.directory()));
        return last.every((v) => v.current && v.digest === fresh);
      }, timeoutMs, () => `instances not in step with a fresh load (${fresh}): ${JSON.stringify(last)}`);
    },
    async close() {
      await Promise.all(
        instances.map(async (i) => {
          const child = i.serve.child;
          if (child.exitCode !== null || child.signalCode !== null) return;
          child.kill('SIGTERM');
          await Promise.race([i.serve.exited, new Promise((r) => setTimeout(r, 5_000))]);
          child.kill('SIGKILL');
        }),
      );
      await issuer.close();
      await upstream.drop();
      await storeDb?.drop();
      for (const r of Object.values(roles)) await superuserQuery(`DROP ROLE IF EXISTS "${r}"`).catch(() => undefined);
      await dir.cleanup();
    },
  };
  return cluster;
}
