// connectUpstream against the run's real PostgreSQL 15: SCRAM, md5, client certificates, every TLS mode, failures.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectUpstream } from '../../proxy/upstream/connect.js';
import type { UpstreamConnection, UpstreamLoginOptions } from '../../proxy/upstream/connect.js';
import { UpstreamError } from '../../proxy/upstream/errors.js';
import type { UpstreamErrorCode } from '../../proxy/upstream/errors.js';
import { createCertificateAuthority, issueCert } from '../helpers/certs.js';
import { freePort } from '../helpers/ports.js';
import { pgInfo } from '../helpers/postgres.js';
import { tempDir } from '../helpers/tmp.js';
import type { TempDir } from '../helpers/tmp.js';
import { baseOptions, closeConnection, createRole, simpleQuery, tlsForwarder } from './support.js';

async function failure(opts: UpstreamLoginOptions, code: UpstreamErrorCode): Promise<UpstreamError> {
  const err = await connectUpstream(opts).then(
    (conn) => {
      conn.socket.destroy();
      throw new Error(`expected ${code}, but the login succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UpstreamError);
  expect((err as UpstreamError).code, (err as Error).message).toBe(code);
  return err as UpstreamError;
}

/** Logs in, proves the session is usable and belongs to `role`, and closes it. */
async function loginAndCheck(opts: UpstreamLoginOptions, serverSeesTls = opts.tls.mode !== 'disable'): Promise<UpstreamConnection> {
  const conn = await connectUpstream(opts);
  try {
    const result = await simpleQuery(conn, 'select current_user, session_user, pg_backend_pid()::text, ssl from pg_stat_ssl where pid = pg_backend_pid()');
    expect(result.error).toBeUndefined();
    const [currentUser, sessionUser, pid, ssl] = result.rows[0] ?? [];
    expect(currentUser).toBe(opts.role);
    expect(sessionUser).toBe(opts.role);
    expect(Number(pid)).toBe(conn.backendKey.processId);
    expect(ssl).toBe(serverSeesTls ? 't' : 'f');
    expect(conn.tls !== undefined).toBe(opts.tls.mode !== 'disable');
    expect(result.status).toBe('I');
  } finally {
    await closeConnection(conn);
  }
  return conn;
}

let scram: Awaited<ReturnType<typeof createRole>>;
let md5: Awaited<ReturnType<typeof createRole>>;
let cert: Awaited<ReturnType<typeof createRole>>;
let dir: TempDir;
let ca: Buffer;

beforeAll(async () => {
  [scram, md5, cert, dir] = await Promise.all([createRole('scram'), createRole('md5'), createRole('cert'), tempDir('rg-upstream-')]);
  ca = readFileSync(pgInfo().caCertPath);
});

afterAll(async () => {
  await Promise.all([scram?.drop(), md5?.drop(), cert?.drop()]);
  await dir?.cleanup();
});

describe('password logins', () => {
  it('logs in with SCRAM-SHA-256 and collects ParameterStatus and BackendKeyData', async () => {
    const conn = await loginAndCheck(
      baseOptions({
        role: scram.role,
        credentials: { password: scram.password },
        params: { application_name: 'rolegate-upstream-test', TimeZone: 'Asia/Tokyo' },
      }),
    );
    expect(conn.parameters.get('server_version')).toMatch(/^15\./);
    expect(conn.parameters.get('session_authorization')).toBe(scram.role);
    expect(conn.parameters.get('application_name')).toBe('rolegate-upstream-test');
    expect(conn.parameters.get('TimeZone')).toBe('Asia/Tokyo');
    expect(conn.backendKey.secretKey.length).toBe(4);
    expect(conn.transactionStatus).toBe('I');
    expect(conn.tls?.protocol).toMatch(/^TLSv1\.[23]$/);
    expect(conn.tls?.cipher).toBeTruthy();
  });

  it('refuses a wrong SCRAM password with UPSTREAM_AUTH and SQLSTATE 28P01, leaking nothing to the client', async () => {
    const wrong = 'not-the-password-XYZ';
    const err = await failure(baseOptions({ role: scram.role, credentials: { password: wrong } }), 'UPSTREAM_AUTH');
    expect(err.sqlstate).toBe('28P01');
    expect(err.publicMessage).toBe('upstream refused the login');
    // The server's text (naming the role) is for the log only; the password is nowhere.
    expect(err.publicMessage).not.toContain(scram.role);
    expect(String((err.cause as Error).message)).toContain('password authentication failed');
    expect(JSON.stringify({ m: err.message, c: (err.cause as Error).message, p: err.publicMessage })).not.toContain(wrong);
  });

  it('logs in with md5', async () => {
    await loginAndCheck(baseOptions({ role: md5.role, credentials: { password: md5.password } }));
  });

  it('refuses a wrong md5 password with SQLSTATE 28P01', async () => {
    const err = await failure(baseOptions({ role: md5.role, credentials: { password: 'nope' } }), 'UPSTREAM_AUTH');
    expect(err.sqlstate).toBe('28P01');
  });

  it('refuses an unknown database as UPSTREAM_REFUSED with SQLSTATE 3D000', async () => {
    const err = await failure(
      baseOptions({ role: scram.role, credentials: { password: scram.password }, database: 'no_such_db_here' }),
      'UPSTREAM_REFUSED',
    );
    expect(err.sqlstate).toBe('3D000');
    expect(err.publicMessage).toBe('upstream refused the connection');
  });

  it('forwards client_encoding as given instead of forcing UTF8', async () => {
    const conn = await connectUpstream(
      baseOptions({ role: scram.role, credentials: { password: scram.password }, params: { client_encoding: 'LATIN1' } }),
    );
    expect(conn.parameters.get('client_encoding')).toBe('LATIN1');
    await closeConnection(conn);
  });
});

describe('client certificate logins', () => {
  it('logs in with a certificate whose CN is the role', async () => {
    const issued = await issueCert({ cn: cert.role, caCertPath: pgInfo().caCertPath, caKeyPath: pgInfo().caKeyPath, dir: dir.path });
    await loginAndCheck(
      baseOptions({ role: cert.role, credentials: { cert: readFileSync(issued.certPath), key: readFileSync(issued.keyPath) } }),
    );
  });

  it('is refused with SQLSTATE 28000 when the CN names another role', async () => {
    const issued = await issueCert({ cn: 'someone_else', caCertPath: pgInfo().caCertPath, caKeyPath: pgInfo().caKeyPath, dir: dir.path });
    const err = await failure(
      baseOptions({ role: cert.role, credentials: { cert: readFileSync(issued.certPath), key: readFileSync(issued.keyPath) } }),
      'UPSTREAM_AUTH',
    );
    expect(err.sqlstate).toBe('28000');
  });

  it('is refused in the TLS handshake when another CA signed the certificate', async () => {
    const other = await createCertificateAuthority(await mkdir(dir, 'other-ca'), 'not the cluster CA');
    const issued = await issueCert({ cn: cert.role, ...other, dir: await mkdir(dir, 'other-ca') });
    await failure(
      baseOptions({ role: cert.role, credentials: { cert: readFileSync(issued.certPath), key: readFileSync(issued.keyPath) } }),
      'UPSTREAM_TLS',
    );
  });

  it('refuses tls disable with a certificate before connecting', async () => {
    const err = await failure(
      baseOptions({ role: cert.role, tls: { mode: 'disable' }, credentials: { cert: 'x', key: 'y' }, port: 1 }),
      'UPSTREAM_TLS',
    );
    expect(err.message).toMatch(/needs TLS/);
  });

  it('fails as UPSTREAM_AUTH when the server wants a password from a certificate role', async () => {
    const issued = await issueCert({ cn: scram.role, caCertPath: pgInfo().caCertPath, caKeyPath: pgInfo().caKeyPath, dir: dir.path });
    const err = await failure(
      baseOptions({ role: scram.role, credentials: { cert: readFileSync(issued.certPath), key: readFileSync(issued.keyPath) } }),
      'UPSTREAM_AUTH',
    );
    expect(err.message).toMatch(/client certificate/);
  });
});

describe('TLS modes', () => {
  const creds = (): Pick<UpstreamLoginOptions, 'role' | 'credentials'> => ({ role: scram.role, credentials: { password: scram.password } });

  it('verify-full accepts the cluster certificate for 127.0.0.1 (IP SAN) and for localhost (DNS SAN)', async () => {
    await loginAndCheck(baseOptions({ ...creds(), tls: { mode: 'verify-full', ca } }));
    await loginAndCheck(baseOptions({ ...creds(), tls: { mode: 'verify-full', ca, servername: 'localhost' } }));
  });

  it('verify-full refuses a name the certificate does not carry', async () => {
    const err = await failure(baseOptions({ ...creds(), tls: { mode: 'verify-full', ca, servername: 'db.example.com' } }), 'UPSTREAM_TLS');
    expect(err.publicMessage).toBe('upstream TLS negotiation failed');
  });

  it('verify-full refuses, and verify-ca accepts, a server certificate without the 127.0.0.1 SAN', async () => {
    const issued = await issueCert({
      cn: 'elsewhere',
      caCertPath: pgInfo().caCertPath,
      caKeyPath: pgInfo().caKeyPath,
      dir: dir.path,
      sans: ['DNS:elsewhere.example'],
    });
    const forwarder = await tlsForwarder(readFileSync(issued.certPath), readFileSync(issued.keyPath));
    try {
      await failure(baseOptions({ ...creds(), port: forwarder.port, tls: { mode: 'verify-full', ca } }), 'UPSTREAM_TLS');
      // The forwarder terminates TLS and reaches PostgreSQL in plaintext.
      await loginAndCheck(baseOptions({ ...creds(), port: forwarder.port, tls: { mode: 'verify-ca', ca } }), false);
      await loginAndCheck(
        baseOptions({ ...creds(), port: forwarder.port, tls: { mode: 'verify-full', ca, servername: 'elsewhere.example' } }),
        false,
      );
    } finally {
      await forwarder.close();
    }
  });

  it('verify-ca and verify-full refuse a chain from another CA', async () => {
    const otherDir = await mkdir(dir, 'wrong-ca');
    const other = readFileSync((await createCertificateAuthority(otherDir, 'wrong CA')).caCertPath);
    await failure(baseOptions({ ...creds(), tls: { mode: 'verify-ca', ca: other } }), 'UPSTREAM_TLS');
    await failure(baseOptions({ ...creds(), tls: { mode: 'verify-full', ca: other } }), 'UPSTREAM_TLS');
    // libpq: sslmode=require with a root certificate behaves like verify-ca.
    await failure(baseOptions({ ...creds(), tls: { mode: 'require', ca: other } }), 'UPSTREAM_TLS');
  });

  it('verify-full without a CA uses the system roots, which do not know the run CA', async () => {
    await failure(baseOptions({ ...creds(), tls: { mode: 'verify-full' } }), 'UPSTREAM_TLS');
  });

  it('verify-ca without a CA is a configuration error', async () => {
    const err = await failure(baseOptions({ ...creds(), tls: { mode: 'verify-ca' } }), 'UPSTREAM_TLS');
    expect(err.message).toMatch(/needs a CA/);
  });

  it('require encrypts without verifying', async () => {
    const conn = await loginAndCheck(baseOptions({ ...creds(), tls: { mode: 'require' } }));
    expect(conn.tls).toBeDefined();
  });

  it('disable logs in over plaintext', async () => {
    const conn = await loginAndCheck(baseOptions({ ...creds(), tls: { mode: 'disable' } }));
    expect(conn.tls).toBeUndefined();
  });

  it('rejects invalid CA material as UPSTREAM_TLS', async () => {
    await failure(baseOptions({ ...creds(), tls: { mode: 'verify-full', ca: 'not a pem' } }), 'UPSTREAM_TLS');
  });
});

describe('unreachable and slow upstreams', () => {
  it('reports a closed port as UPSTREAM_UNREACHABLE', async () => {
    const port = await freePort();
    const err = await failure(
      baseOptions({ role: scram.role, credentials: { password: scram.password }, port }),
      'UPSTREAM_UNREACHABLE',
    );
    expect(err.publicMessage).toBe('upstream database unavailable');
    expect((err.cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });
});

async function mkdir(base: TempDir, name: string): Promise<string> {
  const { mkdir: make } = await import('node:fs/promises');
  const path = `${base.path}/${name}`;
  await make(path, { recursive: true });
  return path;
}
