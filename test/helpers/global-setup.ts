// One real PostgreSQL 15 per test run: scram-sha-256, TLS on (a CA made for the run), loopback only.
// Test files get its details through vitest's provide/inject (see postgres.ts).
import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { createCertificateAuthority, issueCert } from '../../demo/certs.js';
import { startLocalPostgres } from '../../demo/local-postgres.js';
import type { PgInfo } from './pg-info.js';
import { freePort } from './ports.js';
import { tempDir } from './tmp.js';
import pg from 'pg';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
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
    await cluster.stop();
    await dir.cleanup();
  };
}
