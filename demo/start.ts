// The demo's start sequence: certificates, PostgreSQL with the demo schema and the development OIDC
// issuer (in parallel), rolegate itself, people over SCIM, tokens, and a check through the proxy.
// Every part it starts is registered with the teardown as soon as it exists.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseConfigText } from '../server/config/load.js';
import { createLogger } from '../lib/log.js';
import { startServer } from '../server/start.js';
import { createCertificateAuthority, issueCert } from './certs.js';
import { startDemoPostgres, type PostgresChoice } from './demo-postgres.js';
import { devResource, startDevIssuer } from './dev-issuer.js';
import { DevMintParam } from './dev-issuer-config.js';
import type { IssuerNoise } from './issuer-noise.js';
import { DEMO_GRANTS, DEMO_PEOPLE, grantedRoles, provisionDemoPeople } from './people.js';
import type { PrintedPerson, ReadyInfo } from './printout.js';
import { DEMO_DATABASE, DemoRole, loadDemoSchema } from './schema.js';
import { checkThroughProxy } from './self-check.js';
import type { Teardown } from './teardown.js';
import { writeTokenScript } from './token-script.js';

export interface StartContext {
  /** The demo's temp folder (empty). */
  dir: string;
  /** One progress line (the caller prefixes it). */
  say: (line: string) => void;
  teardown: Teardown;
  signal: AbortSignal;
  noise: IssuerNoise;
  /** performance.now() when the demo began. */
  startedAt: number;
  postgres: PostgresChoice;
}

/** Thrown between steps once the demo was asked to stop. */
class Interrupted extends Error {
  constructor() {
    super('interrupted');
  }
}

const AUDIENCE = 'rolegate';
const TOKEN_TTL_SEC = 3600;

const postgresName = (version: string): string => (version ? `PostgreSQL ${version}` : 'PostgreSQL');

/** Starts everything; resolves with what the printout needs. */
export async function startDemo(ctx: StartContext): Promise<ReadyInfo> {
  const { dir, say, teardown } = ctx;
  const step = (): void => {
    if (ctx.signal.aborted) throw new Interrupted();
  };
  const secs = (since: number): string => `${((performance.now() - since) / 1000).toFixed(1)} s`;

  say('creating a development CA and TLS certificates ...');
  const ca = await createCertificateAuthority(dir, 'rolegate demo CA');
  // One server certificate (localhost, 127.0.0.1) for PostgreSQL, the issuer and the proxy.
  const cert = await issueCert({ cn: 'localhost', ...ca, dir, fileName: 'localhost' });
  await Promise.all([chmod(ca.caKeyPath, 0o600), chmod(cert.keyPath, 0o600)]);
  const caPem = await readFile(ca.caCertPath, 'utf8');
  const tlsPem = { cert: await readFile(cert.certPath, 'utf8'), key: await readFile(cert.keyPath, 'utf8'), ca: caPem };
  step();

  const database = async () => {
    const t = performance.now();
    const pgDir = join(dir, 'postgres');
    await mkdir(pgDir);
    const superuserPassword = randomBytes(24).toString('base64url');
    const cluster = await startDemoPostgres({
      dir: pgDir,
      choice: ctx.postgres,
      superuserPassword,
      tls: cert,
      onStarting: ({ version, source }) => say(`starting ${postgresName(version.split('.')[0] ?? '')} (${source}) ...`),
    });
    teardown.add('PostgreSQL', () => cluster.stop());
    const passwords = await loadDemoSchema({ host: cluster.host, port: cluster.port, superuserPassword, ca: caPem });
    say(`${postgresName(cluster.version)} on 127.0.0.1:${cluster.port} with the demo schema (${secs(t)})`);
    return { cluster, passwords };
  };
  const identityProvider = async () => {
    const t = performance.now();
    say('starting the development OIDC issuer (oidc-provider over HTTPS) ...');
    const issuer = await startDevIssuer({ audience: AUDIENCE, tls: tlsPem, accessTokenTtlSec: TOKEN_TTL_SEC });
    teardown.add('OIDC issuer', () => issuer.close());
    say(`OIDC issuer on ${issuer.issuer} (${secs(t)})`);
    return issuer;
  };
  // Both branches run to the end even when one fails, so that whatever started is stopped.
  const [pgResult, issuerResult] = await Promise.allSettled([database(), identityProvider()]);
  if (pgResult.status === 'rejected') throw pgResult.reason;
  if (issuerResult.status === 'rejected') throw issuerResult.reason;
  const { cluster, passwords } = pgResult.value;
  const issuer = issuerResult.value;
  step();

  say('starting rolegate (TLS proxy, SQLite directory, SCIM endpoint) ...');
  const scimToken = randomBytes(24).toString('base64url');
  const adminToken = randomBytes(24).toString('base64url');
  const config = {
    proxy: { listen: '127.0.0.1:0', tls: { cert: cert.certPath, key: cert.keyPath }, drainTimeout: '1s' },
    upstream: { host: cluster.host, port: cluster.port, tls: { mode: 'verify-full', ca: ca.caCertPath } },
    oidc: { issuer: issuer.issuer, audience: AUDIENCE, ca: ca.caCertPath },
    directory: { store: `sqlite:${join(dir, 'directory.db')}` },
    roles: DEMO_GRANTS.map((g) => ({ role: g.role, groups: [...g.groups], databases: [DEMO_DATABASE], credentials: { password: passwords[g.role] } })),
    scim: { tokens: [scimToken] },
    admin: { listen: '127.0.0.1:0', tokens: [adminToken] },
    audit: { file: join(dir, 'audit', 'rolegate.jsonl') },
    log: { level: 'info' },
  };
  // JSON is YAML: the demo's config goes through the same loader and checks as a config file.
  const parsed = parseConfigText(JSON.stringify(config), {}, dir);
  if (!parsed.ok) throw new Error(`demo config invalid: ${parsed.problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
  const logPath = join(dir, 'rolegate.log');
  const logStream = createWriteStream(logPath, { mode: 0o600 });
  teardown.add('log file', () => new Promise<void>((resolve) => logStream.end(resolve)));
  const logger = createLogger(parsed.config.log.level, logStream);
  ctx.noise.sendTo((line) => logger.warn({ component: 'oidc-provider' }, line));
  const server = await startServer(parsed.config, { logger, instance: `demo-${process.pid}` });
  teardown.add('rolegate', () => server.close());
  const adminBase = `http://127.0.0.1:${server.admin.port}`;
  step();

  say(`provisioning ${DEMO_PEOPLE.length} people over SCIM (${adminBase}/scim/v2) ...`);
  const ids = await provisionDemoPeople(`${adminBase}/scim/v2`, scimToken);
  step();

  say('minting tokens and checking each person through the proxy ...');
  const tokenExpiresAt = new Date(Date.now() + TOKEN_TTL_SEC * 1000);
  const people: PrintedPerson[] = await Promise.all(DEMO_PEOPLE.map(async (p) => {
    const granted = grantedRoles(p);
    return {
      userName: p.userName,
      group: p.group,
      grantedRoles: granted,
      loginUser: p.loginAs === 'self' ? p.userName : p.loginAs,
      role: p.loginAs === 'self' ? (granted[0] ?? '') : p.loginAs,
      token: await issuer.tokenFor(p.userName, { expiresInSec: TOKEN_TTL_SEC }),
      scimId: ids.get(p.userName) ?? '',
    };
  }));
  const tokenScript = join(dir, 'token');
  await writeTokenScript({
    path: tokenScript,
    issuer: issuer.issuer,
    clientId: issuer.clients.minter.clientId,
    clientSecret: issuer.clients.minter.clientSecret,
    form: { resource: devResource(AUDIENCE), [DevMintParam.email]: '{email}' },
    ca: caPem,
    nodePath: process.execPath,
  });
  await checkThroughProxy(
    { port: server.proxy.port, ca: caPem },
    people.map((p) => ({ loginUser: p.loginUser, token: p.token, role: p.role, canInsert: p.role === DemoRole.writer })),
  );
  step();

  return {
    elapsedMs: performance.now() - ctx.startedAt,
    dir,
    caPath: ca.caCertPath,
    postgres: { version: cluster.version, source: cluster.source, port: cluster.port },
    issuer: issuer.issuer,
    proxyPort: server.proxy.port,
    adminBase,
    scimToken,
    adminToken,
    logPath,
    auditDir: join(dir, 'audit'),
    tokenScript,
    tokenTtlSec: TOKEN_TTL_SEC,
    tokenExpiresAt,
    roles: DEMO_GRANTS.map((g) => g.role),
    people,
  };
}
