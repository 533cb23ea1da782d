// Shared by the `rolegate login` tests: a dev issuer over HTTPS with its CA on disk and a confidential
// client, `runLogin` in-process with its output captured, and a person denying a device code.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runLogin } from '../../cli/login.js';
import type { LoginIo } from '../../cli/login.js';
import type { LoginArgs } from '../../cli/args.js';
import type { BoundedFetch } from '../../proxy/auth/http-fetch.js';
import { startTestIssuer } from '../auth/issuer-fixture.js';
import type { TestIssuer } from '../auth/issuer-fixture.js';
import { tempDir } from '../helpers/tmp.js';

/** A confidential client_credentials client registered on the test issuer. */
export const APP = { clientId: 'login-test-app', clientSecret: 'app-secret-NOT-IN-OUTPUT-7f3a9c' } as const;
/** An audience that is an absolute URI, so it travels as an RFC 8707 resource indicator. */
export const URI_AUDIENCE = 'https://warehouse.example/db';

export interface LoginFixture {
  t: TestIssuer;
  issuer: string;
  caPath: string;
  /** A fresh folder for this file's caches and outputs. */
  dir: string;
  close(): Promise<void>;
}

export async function startLoginFixture(): Promise<LoginFixture> {
  const t = await startTestIssuer({
    clients: [
      {
        client_id: APP.clientId,
        client_secret: APP.clientSecret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
  });
  const dir = await tempDir('rolegate-login-');
  const caPath = join(dir.path, 'issuer-ca.pem');
  await writeFile(caPath, t.ca);
  return {
    t,
    issuer: t.issuer.issuer,
    caPath,
    dir: dir.path,
    async close() {
      await t.close();
      await dir.cleanup();
    },
  };
}

export interface InProcessRun {
  result: Promise<number>;
  out(): string;
  err(): string;
  /** Resolves with the user code once the device prompt has been printed. */
  userCode(): Promise<string>;
}

const CODE = /enter code (\S+)/;

/** Starts `runLogin` in this process; stdout and stderr are captured separately. */
export function startLogin(args: Partial<LoginArgs> & Pick<LoginArgs, 'issuer' | 'clientId'>, io: Partial<LoginIo> & Pick<LoginIo, 'cacheDir'>): InProcessRun {
  let out = '';
  let err = '';
  const result = runLogin({ noCache: false, ...args }, { env: {}, ...io, out: (s) => (out += s), err: (s) => (err += s) });
  return {
    result,
    out: () => out,
    err: () => err,
    async userCode() {
      const deadline = Date.now() + 10_000;
      for (;;) {
        const m = CODE.exec(err);
        if (m !== null) return m[1] as string;
        if (Date.now() > deadline) throw new Error(`no device prompt; stderr so far: ${err}`);
        await Promise.race([result, new Promise((r) => setTimeout(r, 25))]);
      }
    },
  };
}

/** Presses "Abort" on the issuer's device confirmation page, as a person who did not start this login. */
export async function denyDevice(f: BoundedFetch, issuer: string, userCode: string): Promise<void> {
  const page = await f(`${issuer}/device?user_code=${encodeURIComponent(userCode)}`);
  const cookie = page.headers
    .getSetCookie()
    .map((c) => c.split(';', 1)[0])
    .join('; ');
  const html = await page.text();
  const form = /<form\b[^>]*action="([^"]+)"[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  if (form === null) throw new Error(`no confirmation form (HTTP ${page.status})`);
  const fields = new URLSearchParams();
  for (const [, name, value] of (form[2] ?? '').matchAll(/<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"/gi)) fields.set(name as string, value as string);
  fields.set('abort', 'yes');
  const res = await f(new URL(form[1] as string, issuer).href, { method: 'POST', headers: { cookie }, body: fields });
  await res.arrayBuffer();
}
