// Development certificates: a throw-away CA and certificates it signs, made with the openssl CLI.
// Used by `rolegate demo` and by the tests (PostgreSQL TLS, the dev OIDC issuer, client certificates).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface CertificateAuthority {
  caCertPath: string;
  caKeyPath: string;
}

export interface IssuedCert {
  certPath: string;
  keyPath: string;
}

/** Creates a P-256 CA valid for 30 days in `dir` (ca.crt, ca.key). */
export async function createCertificateAuthority(dir: string, name = 'rolegate development CA'): Promise<CertificateAuthority> {
  const caCertPath = join(dir, 'ca.crt');
  const caKeyPath = join(dir, 'ca.key');
  await openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', caKeyPath, '-out', caCertPath, '-days', '30', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return { caCertPath, caKeyPath };
}

/**
 * Issues a certificate for `cn` signed by the CA, usable as a server and a client certificate.
 * `sans` entries are `DNS:name` or `IP:addr`; default `DNS:localhost, IP:127.0.0.1`.
 * Files are `<fileName ?? cn>.crt/.key` in `dir`.
 */
export async function issueCert(opts: {
  cn: string;
  caCertPath: string;
  caKeyPath: string;
  dir: string;
  sans?: string[];
  fileName?: string;
}): Promise<IssuedCert> {
  const base = opts.fileName ?? opts.cn.replace(/[^A-Za-z0-9_.-]/g, '_');
  const keyPath = join(opts.dir, `${base}.key`);
  const csrPath = join(opts.dir, `${base}.csr`);
  const certPath = join(opts.dir, `${base}.crt`);
  const extPath = join(opts.dir, `${base}.ext`);
  const sans = opts.sans ?? ['DNS:localhost', 'IP:127.0.0.1'];
  const ext = ['basicConstraints=CA:FALSE', 'keyUsage=critical,digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth,clientAuth'];
  if (sans.length > 0) ext.push(`subjectAltName=${sans.join(',')}`);
  await writeFile(extPath, ext.join('\n') + '\n');
  await openssl([
    'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', keyPath, '-out', csrPath, '-subj', `/CN=${opts.cn}`,
  ]);
  await openssl([
    'x509', '-req', '-in', csrPath, '-CA', opts.caCertPath, '-CAkey', opts.caKeyPath,
    '-set_serial', `0x${randomBytes(12).toString('hex')}`, '-days', '30', '-out', certPath, '-extfile', extPath,
  ]);
  return { certPath, keyPath };
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (err) {
    throw new Error(`openssl ${args[0]} failed (is the openssl CLI installed?)`, { cause: err });
  }
}
