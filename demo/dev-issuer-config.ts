// oidc-provider configuration for the development issuer: clients, resource servers (JWT per signing
// algorithm, and opaque), and the DEVELOPMENT-ONLY way to mint a token for any email address.
//
// Minting: the `minter` client (client_secret_basic, secret known only to the process that started the
// issuer) uses the client_credentials grant with extra form parameters, `dev_email`, `dev_expires_in`
// and `dev_email_verified`. extraTokenClaims copies `dev_email` into the token as `email` and `sub`,
// and `dev_email_verified` (`true`/`false`) as the boolean `email_verified` (absent unless sent). A real
// identity provider has nothing like this; it exists so that tests and `rolegate demo` can hand out
// tokens for people without a browser login.
/// <reference path="./oidc-provider.d.ts" />
import { errors } from 'oidc-provider';
import type { Configuration, ProviderContext, ProviderToken } from 'oidc-provider';
import { DevSigningAlg } from './dev-issuer-keys.js';
import type { DevSigningJwk } from './dev-issuer-keys.js';

/** Client credentials the development issuer registers. */
export interface DevIssuerClients {
  /** client_credentials client that may mint tokens for any email (development only). */
  readonly minter: { readonly clientId: string; readonly clientSecret: string };
  /** Confidential client allowed to introspect every token (for the proxy's `oidc.introspection`). */
  readonly introspection: { readonly clientId: string; readonly clientSecret: string };
  /** Public client for the device authorization flow (`rolegate login`). */
  readonly cli: { readonly clientId: string };
}

/** Token endpoint form parameters honoured only for the minter client. */
export const DevMintParam = { email: 'dev_email', expiresIn: 'dev_expires_in', emailVerified: 'dev_email_verified' } as const;

/** What a resource indicator asks for: a JWT signed with an algorithm, or an opaque token. */
export type DevTokenKind = DevSigningAlg | 'opaque';

const RESOURCE_PREFIX = 'urn:rolegate:dev:';
const RESOURCE = /^urn:rolegate:dev:(ES256|RS256|opaque):(.+)$/;
const RESOURCE_SCOPE = 'postgres';

/**
 * The RFC 8707 resource indicator that makes the development issuer issue a token for `audience`:
 * `urn:rolegate:dev:<ES256|RS256|opaque>:<audience, percent-encoded>`. Any other absolute URI is
 * accepted too and becomes the audience of an ES256 JWT.
 */
export function devResource(audience: string, kind: DevTokenKind = DevSigningAlg.ES256): string {
  return `${RESOURCE_PREFIX}${kind}:${encodeURIComponent(audience)}`;
}

function resourceServerInfo(indicator: string): Record<string, unknown> {
  const m = RESOURCE.exec(indicator);
  let kind: DevTokenKind = DevSigningAlg.ES256;
  let audience = indicator;
  if (m !== null) {
    kind = m[1] as DevTokenKind;
    try {
      audience = decodeURIComponent(m[2] as string);
    } catch {
      throw new errors.InvalidTarget('resource indicator audience is not percent-encoded');
    }
  } else if (indicator.startsWith(RESOURCE_PREFIX)) {
    throw new errors.InvalidTarget('unknown development resource indicator');
  }
  if (kind === 'opaque') return { scope: RESOURCE_SCOPE, audience, accessTokenFormat: 'opaque' };
  return { scope: RESOURCE_SCOPE, audience, accessTokenFormat: 'jwt', jwt: { sign: { alg: kind } } };
}

function bodyParam(ctx: ProviderContext, name: string): string | undefined {
  const v = ctx.oidc.body?.[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** Builds the oidc-provider configuration. */
export function devProviderConfig(opts: {
  keys: readonly DevSigningJwk[];
  audience: string;
  clients: DevIssuerClients;
  extraClients: readonly Record<string, unknown>[];
  accessTokenTtlSec: number;
  cookieKeys: readonly string[];
}): Configuration {
  const { clients } = opts;
  const isMinter = (ctx: ProviderContext): boolean => ctx.oidc.client?.clientId === clients.minter.clientId;
  const mintedTtl = (ctx: ProviderContext): number | undefined => {
    const raw = bodyParam(ctx, DevMintParam.expiresIn);
    if (raw === undefined || !isMinter(ctx)) return undefined;
    const n = Number(raw);
    return Number.isInteger(n) && n > 0 ? n : undefined;
  };

  return {
    clients: [
      {
        client_id: clients.minter.clientId,
        client_secret: clients.minter.clientSecret,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: clients.introspection.clientId,
        client_secret: clients.introspection.clientSecret,
        grant_types: [],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      {
        client_id: clients.cli.clientId,
        grant_types: ['urn:ietf:params:oauth:grant-type:device_code', 'refresh_token'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'none',
      },
      ...opts.extraClients,
    ],
    jwks: { keys: opts.keys.map((k) => ({ ...k })) },
    cookies: { keys: [...opts.cookieKeys] },
    // Development accounts are their email address; the device flow's dev login form accepts any name.
    findAccount: (_ctx: ProviderContext, id: string) => ({
      accountId: id,
      claims: () => ({ sub: id, email: id, email_verified: true }),
    }),
    claims: { openid: ['sub'], email: ['email', 'email_verified'] },
    scopes: ['openid', 'email', 'offline_access', RESOURCE_SCOPE],
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      clientCredentials: { enabled: true },
      revocation: {
        enabled: true,
        allowedPolicy: (_ctx: ProviderContext, client: { clientId: string }, token: ProviderToken) => client.clientId === token.clientId,
      },
      introspection: {
        enabled: true,
        allowedPolicy: (_ctx: ProviderContext, client: { clientId: string }, token: ProviderToken) =>
          client.clientId === clients.introspection.clientId || client.clientId === token.clientId,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx: ProviderContext, _client: unknown, oneOf?: string[]) => oneOf ?? devResource(opts.audience),
        // Device-flow tokens requested with `openid` still get the granted resource (and so an audience).
        useGrantedResource: () => true,
        getResourceServerInfo: (_ctx: ProviderContext, indicator: string) => resourceServerInfo(indicator),
      },
    },
    extraTokenClaims: (ctx: ProviderContext, token: ProviderToken) => {
      if (token.accountId !== undefined) return { email: token.accountId };
      const email = isMinter(ctx) ? bodyParam(ctx, DevMintParam.email) : undefined;
      if (email === undefined) return undefined;
      const verified = bodyParam(ctx, DevMintParam.emailVerified);
      // `sub` here reaches introspection answers; JWTs get it from the customizer below.
      return verified === undefined ? { email, sub: email } : { email, sub: email, email_verified: verified === 'true' };
    },
    formats: {
      customizers: {
        jwt: (_ctx: ProviderContext, token: ProviderToken, jwt: { payload: Record<string, unknown> }) => {
          const email = jwt.payload['email'];
          if (token.accountId === undefined && token.clientId === clients.minter.clientId && typeof email === 'string') {
            jwt.payload['sub'] = email;
          }
        },
      },
    },
    ttl: {
      AccessToken: (ctx: ProviderContext) => mintedTtl(ctx) ?? opts.accessTokenTtlSec,
      ClientCredentials: (ctx: ProviderContext) => mintedTtl(ctx) ?? opts.accessTokenTtlSec,
      DeviceCode: 600,
      Grant: 14 * 24 * 3600,
      IdToken: 3600,
      Interaction: 3600,
      RefreshToken: 14 * 24 * 3600,
      Session: 14 * 24 * 3600,
      AuthorizationCode: 60,
    },
  };
}
