// One real PostgreSQL 15 per test run: scram-sha-256, TLS on (a CA made for the run), loopback only.
// Test files get its details through vitest's provide/inject (see postgres.ts).
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { createCertificateAuthority, issueCert } from '../../demo/certs.js';
import { startLocalPostgres } from '../../demo/local-postgres.js';
import type { PgInfo } from './pg-info.js';
import { freePort } from './ports.js';
import { tempDir } from './tmp.js';
import { filesUnder, scanFiles } from './secret-scan.js';
import pg from 'pg';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // The ledger: secrets the tests used and copies of the logs and audit files they made, scanned at
  // the end of the run (test/helpers/ledger.ts, test/helpers/secret-scan.ts).
  const ledger = await tempDir('rolegate-ledger-');
  project.provide('ledger', ledger.path);
  const dir = await tempDir('rolegate-pg-');
  const ca = await createCertificateAuthority(dir.path, 'rolegate test CA');
  const server = await issueCert({ cn: 'localhost', ...ca, dir: dir.path, fileName: 'server' });
  const password = randomBytes(18).toString('base64url');
  const port = await freePort();
  const cluster = await startLocalPostgres({
    dir: dir.path,
    port,
    superuserPassword: password,
    tls: { certPath: server.certPath, keyPath: server.keyPath, caPath: ca.caCertPath },
    // pg_hba: members of rg_cert_login authenticate by client certificate (CN = role), members of
    // rg_md5_login by md5, everyone else by SCRAM, over TLS or plaintext (upstream tls: disable tests).
    hba: [
      'hostssl all +rg_cert_login 127.0.0.1/32 cert',
      'host all +rg_md5_login 127.0.0.1/32 md5',
      'host all all 127.0.0.1/32 scram-sha-256',
    ],
  });
  const superuserUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres?sslmode=verify-full&sslrootcert=${encodeURIComponent(ca.caCertPath)}`;
  const client = new pg.Client({ connectionString: superuserUrl });
  await client.connect();
  await client.query('CREATE ROLE rg_cert_login NOLOGIN');
  await client.query('CREATE ROLE rg_md5_login NOLOGIN');
  await client.end();

  const info: PgInfo = {
    host: '127.0.0.1',
    port,
    superuser: 'postgres',
    password,
    superuserUrl,
    caCertPath: ca.caCertPath,
    caKeyPath: ca.caKeyPath,
    serverCertPath: server.certPath,
    binDir: cluster.binDir,
    dir: dir.path,
  };
  project.provide('pg', info);
  return async () => {
    let leaked: Error | undefined;
    try {
      scanForSecrets(ledger.path, [join(dir.path, 'postgres.log')], [password]);
    } catch (err) {
      leaked = err as Error;
    }
    await cluster.stop();
    await dir.cleanup();
    await ledger.cleanup();
    if (leaked) {
      // vitest reports an error thrown here but still exits 0: the exit code is set as well.
      console.error(leaked.message);
      process.exitCode = 1;
      throw leaked;
    }
  };
}

/**
 * Every secret any test registered, searched for in every log and audit file the run kept, and in
 * the PostgreSQL server log. The scanner first proves it finds a planted secret, so a broken scan
 * cannot pass; a run that used the stack must have secrets and files to scan.
 */
function scanForSecrets(ledger: string, extraFiles: readonly string[], extraSecrets: readonly string[]): void {
  const canary = randomBytes(24).toString('base64url');
  const planted = join(ledger, 'canary.txt');
  writeFileSync(planted, `{"msg":"x","authorization":"Bearer ${canary}"}\n`);
  if (scanFiles([planted], [canary]).leaks.length !== 1) throw new Error('secret scan: the scanner did not find a planted secret');
  const secrets = [...extraSecrets];
  for (const f of filesUnder(join(ledger, 'secrets'))) secrets.push(...readFileSync(f, 'utf8').split('\n').filter((l) => l !== ''));
  const logs = filesUnder(join(ledger, 'logs'));
  const audit = filesUnder(join(ledger, 'audit'));
  const report = scanFiles([...logs, ...audit, ...extraFiles], secrets);
  if (logs.length > 0 && (report.secrets === 0 || report.bytes === 0 || audit.length === 0)) {
    throw new Error(`secret scan: ${logs.length} logs kept but ${report.secrets} secrets and ${audit.length} audit files: the ledger is not being filled`);
  }
  mkdirSync(ledger, { recursive: true });
  console.log(`secret scan: ${report.secrets} secrets in ${report.files} log and audit files (${(report.bytes / 1048576).toFixed(1)} MiB): ${report.leaks.length === 0 ? 'none found' : `${report.leaks.length} found`}`);
  if (report.leaks.length > 0) throw new Error(`secret scan: secrets found in logs or audit files:\n${report.leaks.slice(0, 20).join('\n')}`);
}
