// `rolegate login`: a token from the cache, a refresh token, client credentials or the device flow,
// then printed on stdout or handed to `--exec CMD` as PGPASSWORD. The token goes nowhere else.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type * as oidc from 'openid-client';
import { parseIssuerSideUrl } from '../proxy/auth/discovery.js';
import { createBoundedFetch } from '../proxy/auth/http-fetch.js';
import { EXIT } from './args.js';
import type { LoginArgs } from './args.js';
import { deviceFlow } from './login/device-flow.js';
import { LoginError, LoginErrorCode, toLoginError } from './login/errors.js';
import { execWithToken } from './login/exec.js';
import { clientCredentials, connectIssuer, grantParams, refresh } from './login/grants.js';
import type { TokenResult } from './login/grants.js';
import { isFresh, TokenCache } from './login/token-cache.js';
import type { CachedToken } from './login/token-cache.js';

/** What `runLogin` may touch besides the network and the cache directory. */
export interface LoginIo {
  /** stdout: the token and nothing else. */
  out(text: string): void;
  /** stderr: the device prompt, warnings, the one error line. */
  err(text: string): void;
  /** Passed to the --exec command (plus PGPASSWORD). */
  env: NodeJS.ProcessEnv;
  cacheDir: string;
  /** Cancels a login in progress. Without it, SIGINT/SIGTERM do (and are handled only while waiting). */
  signal?: AbortSignal;
  /** Clock in milliseconds since the epoch (default Date.now). */
  now?: () => number;
}

/**
 * The device flow asks for OIDC sign-in plus a refresh token (RFC 6749 §1.5) so that the next
 * `rolegate login` after the access token expires needs no browser. `--scope` replaces this.
 */
export const DEFAULT_DEVICE_SCOPE = 'openid offline_access';

// One issuer round trip; the device flow's wait for a person is bounded separately by `expires_in`.
const REQUEST_TIMEOUT_MS = 15_000;

/**
 * The `rolegate login` verb as the process runs it: the client secret may come from
 * ROLEGATE_CLIENT_SECRET, the cache lives in $ROLEGATE_CACHE_DIR (else the XDG cache folder).
 */
export async function runLoginCommand(args: LoginArgs): Promise<void> {
  const secret = args.clientSecret ?? process.env.ROLEGATE_CLIENT_SECRET;
  process.exitCode = await runLogin(
    { ...args, ...(secret === undefined || secret === '' ? {} : { clientSecret: secret }) },
    {
      out: (text) => process.stdout.write(text),
      err: (text) => process.stderr.write(text),
      env: process.env,
      cacheDir: process.env.ROLEGATE_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'rolegate'),
    },
  );
}

/** Runs `rolegate login` and resolves with the process exit code. */
export async function runLogin(args: LoginArgs, io: LoginIo): Promise<number> {
  const say = (line: string): void => io.err(`rolegate: ${line}\n`);
  let token: string;
  try {
    token = await obtainToken(args, io, say);
  } catch (err) {
    say(toLoginError(err, 'login', args.issuer, args.clientSecret === undefined ? [] : [args.clientSecret]).message);
    return EXIT.failure;
  }
  if (args.exec !== undefined) return execWithToken(args.exec, token, io.env, say);
  io.out(`${token}\n`);
  return EXIT.ok;
}

async function obtainToken(args: LoginArgs, io: LoginIo, say: (line: string) => void): Promise<string> {
  const nowSec = (): number => Math.floor((io.now ?? Date.now)() / 1000);
  let issuerUrl: URL;
  try {
    issuerUrl = parseIssuerSideUrl(args.issuer, '--issuer');
  } catch (err) {
    throw new LoginError(LoginErrorCode.badInput, (err as Error).message);
  }
  const ca = args.ca === undefined ? undefined : await readCa(args.ca);
  const scope = args.scope ?? (args.clientSecret === undefined ? DEFAULT_DEVICE_SCOPE : undefined);
  const cache = args.noCache ? undefined : new TokenCache(io.cacheDir, { issuer: args.issuer, clientId: args.clientId, audience: args.audience, scope }, say);
  const cached = await cache?.read();
  if (cached !== undefined && isFresh(cached, nowSec())) return cached.accessToken;

  const interrupt = io.signal === undefined ? processInterrupt() : { signal: io.signal, dispose: () => {} };
  const fetcher = createBoundedFetch({ ...(ca === undefined ? {} : { ca }), timeoutMs: REQUEST_TIMEOUT_MS });
  const cancellable: oidc.CustomFetch = (url, init) =>
    fetcher(url, { ...init, signal: init.signal ? AbortSignal.any([init.signal, interrupt.signal]) : interrupt.signal });
  // Neither may reach the terminal, even if an issuer echoed one back in an error description.
  const secrets = [args.clientSecret, cached?.refreshToken].filter((s): s is string => s !== undefined);
  let step = 'discovery';
  try {
    const config = await connectIssuer(issuerUrl, args.clientId, args.clientSecret, cancellable);
    const params = grantParams(args.audience, scope);
    let result: TokenResult | undefined;
    if (cached?.refreshToken !== undefined) {
      step = 'refresh';
      try {
        result = await refresh(config, cached.refreshToken, params, nowSec);
      } catch (err) {
        if (interrupt.signal.aborted) throw err;
        say(`${toLoginError(err, step, args.issuer, secrets).message}; signing in again`);
      }
    }
    if (result === undefined && args.clientSecret !== undefined) {
      step = 'client credentials grant';
      result = await clientCredentials(config, params, nowSec);
    } else if (result === undefined) {
      step = 'device authorization';
      result = await deviceFlow(config, params, { prompt: (line) => io.err(`${line}\n`), signal: interrupt.signal }, nowSec);
    }
    if (cache !== undefined) await store(cache, result, say);
    return result.accessToken;
  } catch (err) {
    if (interrupt.signal.aborted) throw new LoginError(LoginErrorCode.cancelled, 'login cancelled', { cause: err });
    throw toLoginError(err, step, args.issuer, secrets);
  } finally {
    interrupt.dispose();
    fetcher.close();
  }
}

async function readCa(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new LoginError(LoginErrorCode.badInput, `cannot read --ca ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** A failed cache write costs the next run a login, not this one: warn and go on. */
async function store(cache: TokenCache, result: TokenResult, say: (line: string) => void): Promise<void> {
  // Without an expiry the access token cannot be reused safely; a refresh token still can.
  if (result.expiresAt === undefined && result.refreshToken === undefined) return;
  const entry: CachedToken = {
    accessToken: result.accessToken,
    expiresAt: result.expiresAt ?? 0,
    ...(result.refreshToken === undefined ? {} : { refreshToken: result.refreshToken }),
  };
  try {
    await cache.write(entry);
  } catch (err) {
    const why = err instanceof LoginError ? err.message : `${cache.path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`;
    say(`token not cached: ${why}`);
  }
}

/** SIGINT/SIGTERM abort the login while it talks to the issuer; the handlers are gone afterwards. */
function processInterrupt(): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
