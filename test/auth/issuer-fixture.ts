// A development issuer over HTTPS with a certificate from a CA made for the test, plus a counting fetch.
import { readFile } from 'node:fs/promises';
import { createCertificateAuthority, issueCert } from '../helpers/certs.js';
import { tempDir } from '../helpers/tmp.js';
import { startDevIssuer } from '../../demo/dev-issuer.js';
import type { DevIssuer, DevIssuerOptions } from '../../demo/dev-issuer.js';
import { createBoundedFetch } from '../../proxy/auth/http-fetch.js';
import { registerSecrets } from '../helpers/ledger.js';

export const AUDIENCE = 'rolegate';

export interface TestIssuer {
  issuer: DevIssuer;
  /** PEM of the CA that signed the issuer's certificate. */
  ca: string;
  close(): Promise<void>;
}

/** Starts a dev issuer on a free loopback port with a fresh CA. */
export async function startTestIssuer(opts: Partial<Omit<DevIssuerOptions, 'tls'>> = {}): Promise<TestIssuer> {
  const dir = await tempDir('rolegate-issuer-');
  const ca = await createCertificateAuthority(dir.path, 'rolegate issuer test CA');
  const leaf = await issueCert({ cn: '127.0.0.1', ...ca, dir: dir.path, fileName: 'issuer', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
  const [caPem, cert, key] = await Promise.all([readFile(ca.caCertPath, 'utf8'), readFile(leaf.certPath, 'utf8'), readFile(leaf.keyPath, 'utf8')]);
  const issuer = await startDevIssuer({ audience: AUDIENCE, ...opts, tls: { cert, key, ca: caPem } });
  // Every token the issuer mints, and its client secrets, go to the suite-wide secret scan.
  registerSecrets(issuer.clients.minter.clientSecret, issuer.clients.introspection.clientSecret);
  const mint = issuer.tokenFor.bind(issuer);
  issuer.tokenFor = async (...args) => {
    const token = await mint(...args);
    registerSecrets(token);
    return token;
  };
  return {
    issuer,
    ca: caPem,
    async close() {
      await issuer.close();
      await dir.cleanup();
    },
  };
}

/** A fetch trusting `ca` that records every URL it is asked for. */
export function countingFetch(ca: string): { fetch: typeof fetch; urls: string[]; count(path: string): number; close(): void } {
  const inner = createBoundedFetch({ ca });
  const urls: string[] = [];
  const wrapped = (async (input: string | URL | Request, init?: RequestInit) => {
    urls.push(input instanceof Request ? input.url : String(input));
    return inner(input, init);
  }) as typeof fetch;
  return {
    fetch: wrapped,
    urls,
    count: (path) => urls.filter((u) => new URL(u).pathname === path).length,
    close: () => inner.close(),
  };
}
