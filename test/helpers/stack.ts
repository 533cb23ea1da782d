// The whole system for end-to-end tests, all real: the run's PostgreSQL (scram, TLS) with roles made
// for this stack, a development OIDC issuer (oidc-provider over HTTPS), and rolegate itself
// (startServer, in-process) with a SQLite directory provisioned over its own SCIM endpoint.
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pg from 'pg';
import { parseConfigText } from '../../server/config/load.js';
import { createLogger } from '../../lib/log.js';
import { startServer, type RunningServer } from '../../server/start.js';
import { startTestIssuer, type TestIssuer } from '../auth/issuer-fixture.js';
import { issueCert } from './certs.js';
import { keepAuditFolder, keepLog, registerSecrets } from './ledger.js';
import { createTestDatabase, pgInfo, pgUrl, superuserQuery, type TestDatabase } from './postgres.js';
import { tempDir, type TempDir } from './tmp.js';

export const USER_URN = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_URN = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const PATCH_URN = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

export interface StackRoles {
  /** SELECT on `items`; granted to analysts and engineering. */
  reader: string;
  /** Owns `items`; granted to engineering. */
  writer: string;
  /** Logs in upstream with a TLS client certificate; granted to ops. */
  certRole: string;
}

export interface Stack {
  readonly server: RunningServer;
  readonly issuer: TestIssuer;
  readonly db: TestDatabase;
  readonly roles: StackRoles;
  readonly proxyPort: number;
  /** The run's CA, which signed the proxy's certificate (for sslrootcert / verify-full). */
  readonly caCertPath: string;
  readonly adminUrl: string;
  readonly scimToken: string;
  readonly dir: string;
  /** Everything rolegate logged (JSON lines). */
  logLines(): string[];
  /** Audit lines on disk so far (the stack's audit folder, every file in order), parsed. */
  auditEvents(): Record<string, unknown>[];
  /** The folder the stack's audit files are written to. */
  readonly auditDir: string;
  tokenFor(email: string, opts?: Parameters<TestIssuer['issuer']['tokenFor']>[1]): Promise<string>;
  scim(path: string, method?: string, body?: unknown): Promise<Response>;
  /** Creates a SCIM user (active unless said otherwise) in the named groups (created on demand). */
  provision(userName: string, groups: string[], opts?: { active?: boolean; emails?: string[] }): Promise<string>;
  groupId(displayName: string): string | undefined;
  /**
   * A connected node-postgres client through the proxy with a fresh token for `email`; `user` is the
   * startup user (default: the person's own name). Errors after connect are the test's to observe.
   */
  connect(email: string, opts?: { user?: string; app?: string }): Promise<pg.Client>;
  /** node-postgres client config for connecting through the proxy with TLS verify-full. */
  pgConfig(user: string, password: string, extra?: Partial<pg.ClientConfig>): pg.ClientConfig;
  /**
   * What SIGHUP does, in-process: the stack's configuration with `change` applied to it goes through
   * the config loader and into `server.reload`. `change` gets a deep copy and may edit it freely.
   */
  reload(change: (config: Record<string, any>) => void): Promise<void>;
  close(): Promise<void>;
}

export interface StackOptions {
  /** Merged into the generated config object (shallow per top-level section). */
  config?: Record<string, Record<string, unknown>>;
  /**
   * Per-user provisioning (docs/design.md §7): a provisioning login for this stack (CREATEROLE, ADMIN
   * OPTION on its roles, pg_signal_backend), `provisioning` configured with this key, and roles
   * without credentials.
   */
  perUser?: { secretKey: string };
}

/** Starts a stack; every test file gets its own (own database, roles, issuer, store, ports). */
export async function startStack(opts: StackOptions = {}): Promise<Stack> {
  const info = pgInfo();
  const dir: TempDir = await tempDir('rolegate-stack-');
  const suffix = randomBytes(4).toString('hex');
  const roles: StackRoles = { reader: `rg_${suffix}_reader`, writer: `rg_${suffix}_writer`, certRole: `rg_${suffix}_cert` };
  const passwords = { reader: randomBytes(12).toString('hex'), writer: randomBytes(12).toString('hex') };
  const db = await createTestDatabase('stack');
  await superuserQuery(`CREATE ROLE "${roles.reader}" LOGIN PASSWORD '${passwords.reader}'`);
  await superuserQuery(`CREATE ROLE "${roles.writer}" LOGIN PASSWORD '${passwords.writer}'`);
  await superuserQuery(`CREATE ROLE "${roles.certRole}" LOGIN IN ROLE rg_cert_login`);
  await superuserQuery(`GRANT CONNECT ON DATABASE "${db.name}" TO "${roles.reader}", "${roles.writer}", "${roles.certRole}"`);
  await superuserQuery(`GRANT CREATE ON SCHEMA public TO "${roles.writer}"`, [], db.name);
  await superuserQuery(`CREATE TABLE items (id serial primary key, name text not null)`, [], db.name);
  await superuserQuery(`ALTER TABLE items OWNER TO "${roles.writer}"`, [], db.name);
  await superuserQuery(`GRANT SELECT ON items TO "${roles.reader}", "${roles.certRole}"`, [], db.name);
  await superuserQuery(`INSERT INTO items (name) VALUES ('alpha'), ('beta')`, [], db.name);

  const prov = { name: `rg_${suffix}_prov`, password: randomBytes(12).toString('hex') };
  if (opts.perUser) {
    await superuserQuery(`CREATE ROLE "${prov.name}" LOGIN CREATEROLE PASSWORD '${prov.password}'`);
    // Not the certificate role: a member of it logs in by certificate only (pg_hba +rg_cert_login).
    await superuserQuery(`GRANT "${roles.reader}", "${roles.writer}" TO "${prov.name}" WITH ADMIN OPTION`);
    await superuserQuery(`GRANT pg_signal_backend TO "${prov.name}"`);
  }

  const proxyCert = await issueCert({ cn: 'localhost', caCertPath: info.caCertPath, caKeyPath: info.caKeyPath, dir: dir.path, fileName: 'proxy' });
  const roleCert = await issueCert({ cn: roles.certRole, caCertPath: info.caCertPath, caKeyPath: info.caKeyPath, dir: dir.path, fileName: 'certrole', sans: [] });
  const issuer = await startTestIssuer();
  const issuerCa = join(dir.path, 'issuer-ca.crt');
  await writeFile(issuerCa, issuer.ca);

  const scimToken = randomBytes(24).toString('base64url');
  registerSecrets(scimToken, passwords.reader, passwords.writer, ...((opts.config?.admin?.tokens as string[] | undefined) ?? []));
  const base: Record<string, Record<string, unknown> | unknown[]> = {
    proxy: { listen: '127.0.0.1:0', tls: { cert: proxyCert.certPath, key: proxyCert.keyPath }, loginTimeout: '10s', drainTimeout: '1s', allowedOptions: ['statement_timeout', 'search_path'] },
    upstream: { host: '127.0.0.1', port: info.port, tls: { mode: 'verify-full', ca: info.caCertPath }, connectTimeout: '5s' },
    oidc: { issuer: issuer.issuer.issuer, audience: 'rolegate', ca: issuerCa, algorithms: ['ES256', 'RS256'] },
    directory: { store: `sqlite:${join(dir.path, 'directory.db')}` },
    roles: [
      { role: roles.reader, groups: ['analysts', 'engineering'], databases: [db.name], credentials: { password: passwords.reader } },
      { role: roles.writer, groups: ['engineering'], databases: [db.name], credentials: { password: passwords.writer } },
      { role: roles.certRole, groups: ['ops'], databases: ['*'], credentials: { cert: roleCert.certPath, key: roleCert.keyPath } },
    ],
    scim: { tokens: [scimToken] },
    admin: { listen: '127.0.0.1:0' },
    log: { level: 'debug' },
  };
  if (opts.perUser) {
    base.provisioning = {
      mode: 'per-user',
      adminUrl: pgUrl({ database: db.name, user: prov.name, password: prov.password }),
      secretKey: opts.perUser.secretKey,
      databases: [db.name],
    };
    base.roles = (base.roles as Record<string, unknown>[]).filter((r) => r.role !== roles.certRole);
    for (const r of base.roles as Record<string, unknown>[]) delete r.credentials;
  }
  for (const [section, values] of Object.entries(opts.config ?? {})) {
    base[section] = { ...(base[section] as Record<string, unknown>), ...values };
  }
  // YAML is a superset of JSON: the config goes through the same loader as a file would.
  let current = JSON.stringify(base);
  const parsed = parseConfigText(current, {}, dir.path);
  if (!parsed.ok) throw new Error(`stack config invalid: ${JSON.stringify(parsed.problems)}`);

  const lines: string[] = [];
  let partial = '';
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const text = partial + chunk.toString('utf8');
      const parts = text.split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts.filter((l) => l.length > 0));
      cb();
    },
  });
  const logger = createLogger('debug', sink);
  const server = await startServer(parsed.config, { logger, instance: `test-${suffix}` });
  const adminUrl = `http://127.0.0.1:${server.admin.port}`;
  const groups = new Map<string, string>();

  const scim = (path: string, method = 'GET', body?: unknown): Promise<Response> =>
    fetch(`${adminUrl}/scim/v2${path}`, {
      method,
      headers: { authorization: `Bearer ${scimToken}`, ...(body === undefined ? {} : { 'content-type': 'application/scim+json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });

  async function ensureGroup(name: string): Promise<string> {
    const known = groups.get(name);
    if (known) return known;
    const res = await scim('/Groups', 'POST', { schemas: [GROUP_URN], displayName: name });
    if (res.status !== 201) throw new Error(`create group ${name}: ${res.status} ${await res.text()}`);
    const id = ((await res.json()) as { id: string }).id;
    groups.set(name, id);
    return id;
  }

  const pgConfig = (user: string, password: string, extra: Partial<pg.ClientConfig> = {}): pg.ClientConfig => ({
    host: 'localhost',
    port: server.proxy.port,
    user,
    password,
    database: db.name,
    ssl: { ca: readCa(info.caCertPath), servername: 'localhost' },
    ...extra,
  });

  return {
    server,
    issuer,
    db,
    roles,
    proxyPort: server.proxy.port,
    caCertPath: info.caCertPath,
    adminUrl,
    scimToken,
    dir: dir.path,
    logLines: () => [...lines],
    auditEvents: () => readAuditDir(join(dir.path, 'audit')),
    auditDir: join(dir.path, 'audit'),
    tokenFor: (email, o) => issuer.issuer.tokenFor(email, o),
    scim,
    async provision(userName, groupNames, o = {}) {
      const res = await scim('/Users', 'POST', {
        schemas: [USER_URN],
        userName,
        active: o.active ?? true,
        emails: (o.emails ?? []).map((value) => ({ value, type: 'work' })),
      });
      if (res.status !== 201) throw new Error(`provision ${userName}: ${res.status} ${await res.text()}`);
      const id = ((await res.json()) as { id: string }).id;
      for (const g of groupNames) {
        const gid = await ensureGroup(g);
        const patch = await scim(`/Groups/${gid}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'add', path: 'members', value: [{ value: id }] }] });
        if (patch.status !== 200 && patch.status !== 204) throw new Error(`add ${userName} to ${g}: ${patch.status}`);
      }
      return id;
    },
    groupId: (name) => groups.get(name),
    async connect(email, o = {}) {
      const client = new pg.Client(pgConfig(o.user ?? email, await issuer.issuer.tokenFor(email), o.app === undefined ? {} : { application_name: o.app }));
      client.on('error', () => undefined);
      await client.connect();
      return client;
    },
    pgConfig,
    async reload(change) {
      const next = JSON.parse(current) as Record<string, any>;
      change(next);
      const text = JSON.stringify(next);
      const reparsed = parseConfigText(text, {}, dir.path);
      if (!reparsed.ok) throw new Error(`reloaded config invalid: ${JSON.stringify(reparsed.problems)}`);
      await server.reload(reparsed.config);
      current = text;
    },
    async close() {
      const personal = opts.perUser ? (await server.store.personalRoles.list()).map((r) => r.roleName) : [];
      await server.close();
      // Kept for the suite-wide secret scan, which runs after every test file.
      keepLog(`stack-${suffix}`, lines.join('\n'));
      keepAuditFolder(`stack-${suffix}`, dir.path);
      await issuer.close();
      await db.drop();
      for (const r of personal) await superuserQuery(`DROP ROLE IF EXISTS "${r.replace(/"/g, '""')}"`).catch(() => undefined);
      for (const r of Object.values(roles)) await superuserQuery(`DROP ROLE IF EXISTS "${r}"`).catch(() => undefined);
      if (opts.perUser) await superuserQuery(`DROP ROLE IF EXISTS "${prov.name}"`).catch(() => undefined);
      await dir.cleanup();
    },
  };
}

/** Every complete line of the numbered audit files in `dir`, oldest file first, parsed. */
export function readAuditDir(dir: string): Record<string, unknown>[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /\.\d{6,}\.jsonl$/.test(n)).sort();
  } catch {
    return [];
  }
  const out: Record<string, unknown>[] = [];
  for (const name of names) {
    const text = readFileSync(join(dir, name), 'utf8');
    for (const line of text.split('\n')) {
      if (line === '') continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line being written right now
      }
    }
  }
  return out;
}

const caCache = new Map<string, string>();
function readCa(path: string): string {
  let pem = caCache.get(path);
  if (pem === undefined) {
    pem = readFileSync(path, 'utf8');
    caCache.set(path, pem);
  }
  return pem;
}
