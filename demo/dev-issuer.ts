// The development OIDC issuer: a real oidc-provider over HTTPS on loopback, for tests and `rolegate demo`.
// Not for production: it registers a client that can mint a token for any email (see dev-issuer-config.ts),
// keeps state in memory, and its dev login form accepts any name.
/// <reference path="./oidc-provider.d.ts" />
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';
import { createBoundedFetch } from '../proxy/auth/http-fetch.js';
import { DevMintParam, devProviderConfig, devResource } from './dev-issuer-config.js';
import { approveDeviceCode } from './dev-issuer-device.js';
import type { DevIssuerClients } from './dev-issuer-config.js';
import { DevSigningAlg, generateSigningKeys } from './dev-issuer-keys.js';
import type { DevSigningJwk } from './dev-issuer-keys.js';

export { devResource, DevSigningAlg };
export type { DevIssuerClients, DevSigningJwk };

export interface DevIssuerOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Loopback address to bind (default 127.0.0.1). */
  host?: string;
  /**
   * PEM server certificate and key. `ca` is the PEM CA that signed `cert`, trusted by the issuer's own
   * calls to its token endpoint (`tokenFor`, `revoke`); without it `cert` must be self-signed.
   */
  tls: { cert: string; key: string; ca?: string };
  /** Audience of tokens when `tokenFor` is not given one, and of device-flow tokens. */
  audience: string;
  /** Extra oidc-provider client metadata objects to register (e.g. a client for an app under test). */
  clients?: readonly Record<string, unknown>[];
  /** Default access token lifetime (default 3600 s). */
  accessTokenTtlSec?: number;
}

export interface TokenForOptions {
  /** Lifetime of this token (default: the issuer's access token TTL). */
  expiresInSec?: number;
  /** Signing algorithm of a JWT (default ES256). */
  alg?: DevSigningAlg;
  audience?: string;
  /** `opaque` issues a reference token that only introspection can check (default `jwt`). */
  format?: 'jwt' | 'opaque';
  /** Sets the `email_verified` claim (default: the token has none, like Okta and Entra access tokens). */
  emailVerified?: boolean;
}

export interface DevIssuer {
  /** `https://<host>:<port>`, without a trailing slash. */
  readonly issuer: string;
  readonly clients: DevIssuerClients;
  /** A real access token from the token endpoint, with `email` and `sub` set to `email`. */
  tokenFor(email: string, opts?: TokenForOptions): Promise<string>;
  /** Revokes a token issued by `tokenFor` (RFC 7009); an opaque token then introspects as inactive. */
  revoke(token: string): Promise<void>;
  /**
   * Approves a pending device authorization (RFC 8628) as `email`, as a person at a browser would:
   * for tests and demos of `rolegate login` with the `cli` client. Development only.
   */
  approveDevice(userCode: string, email: string): Promise<void>;
  /** Replaces the signing keys with new ones (new kids); the old kids are no longer served. */
  rotateKeys(): Promise<void>;
  /** The current private signing keys, for tests that forge tokens. */
  privateJwks(): { keys: DevSigningJwk[] };
  close(): Promise<void>;
}

// oidc-provider's default routes.
const TOKEN_PATH = '/token';
const REVOCATION_PATH = '/token/revocation';

/** Starts the development issuer and resolves once it accepts requests. */
export async function startDevIssuer(opts: DevIssuerOptions): Promise<DevIssuer> {
  const host = opts.host ?? '127.0.0.1';
  const secret = (): string => randomBytes(32).toString('base64url');
  const clients: DevIssuerClients = Object.freeze({
    minter: Object.freeze({ clientId: 'rolegate-dev-minter', clientSecret: secret() }),
    introspection: Object.freeze({ clientId: 'rolegate', clientSecret: secret() }),
    cli: Object.freeze({ clientId: 'rolegate-cli' }),
  });
  const cookieKeys = [secret()];

  let keys = await generateSigningKeys();
  // Swapped by rotateKeys(): oidc-provider reads its keys only at construction.
  let handle: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = https.createServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' }, (req, res) => handle(req, res));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const issuer = `https://${host.includes(':') ? `[${host}]` : host}:${port}`;

  const install = (): void => {
    const provider = new Provider(
      issuer,
      devProviderConfig({
        keys,
        audience: opts.audience,
        clients,
        extraClients: opts.clients ?? [],
        accessTokenTtlSec: opts.accessTokenTtlSec ?? 3600,
        cookieKeys,
      }),
    );
    handle = provider.callback();
  };
  install();

  const client = createBoundedFetch({ ca: opts.tls.ca ?? opts.tls.cert });
  // RFC 6749 §2.3.1: client_id and secret are form-urlencoded before being joined for Basic auth.
  const basic = `Basic ${Buffer.from(`${encodeURIComponent(clients.minter.clientId)}:${encodeURIComponent(clients.minter.clientSecret)}`).toString('base64')}`;
  const post = async (path: string, form: Record<string, string>): Promise<Response> =>
    client(`${issuer}${path}`, {
      method: 'POST',
      headers: { authorization: basic, accept: 'application/json' },
      body: new URLSearchParams(form),
    });

  return {
    issuer,
    clients,

    async tokenFor(email, tokenOpts = {}) {
      const kind = tokenOpts.format === 'opaque' ? 'opaque' : (tokenOpts.alg ?? DevSigningAlg.ES256);
      const form: Record<string, string> = {
        grant_type: 'client_credentials',
        resource: devResource(tokenOpts.audience ?? opts.audience, kind),
        [DevMintParam.email]: email,
      };
      if (tokenOpts.expiresInSec !== undefined) form[DevMintParam.expiresIn] = String(tokenOpts.expiresInSec);
      if (tokenOpts.emailVerified !== undefined) form[DevMintParam.emailVerified] = String(tokenOpts.emailVerified);
      const res = await post(TOKEN_PATH, form);
      const body = (await res.json().catch(() => ({}))) as Record<string, unknown>;
      if (res.status !== 200 || typeof body['access_token'] !== 'string') {
        throw new Error(`dev issuer token endpoint answered ${res.status}: ${String(body['error_description'] ?? body['error'] ?? '')}`);
      }
      return body['access_token'];
    },

    async revoke(token) {
      const res = await post(REVOCATION_PATH, { token });
      if (res.status !== 200) throw new Error(`dev issuer revocation endpoint answered ${res.status}`);
    },

    approveDevice(userCode, email) {
      return approveDeviceCode(client, issuer, userCode, email);
    },

    async rotateKeys() {
      keys = await generateSigningKeys();
      install();
    },

    privateJwks() {
      return { keys: keys.map((k) => ({ ...k })) };
    },

    async close() {
      client.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
