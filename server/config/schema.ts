// The one config schema (docs/design.md §4): zod, strict (unknown keys are errors), safe defaults.
// Durations become milliseconds; `listen` strings become { host, port }.
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseDuration } from './duration.js';
import { parseSize } from './size.js';

const duration = (fallback: string) =>
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      const ms = parseDuration(text ?? fallback);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration (examples: 500ms, 15s, 10m, 12h)` });
        return z.NEVER;
      }
      return ms;
    });

/** A byte size ("100MB", "64KiB", or a number of bytes) of at least `min` bytes. */
const size = (fallback: string, min: number) =>
  z
    .union([z.string(), z.number()])
    .optional()
    .transform((text, ctx) => {
      const bytes = parseSize(text ?? fallback);
      if (bytes === undefined) {
        ctx.addIssue({ code: 'custom', message: `${JSON.stringify(text)} is not a size (examples: 100MB, 64KiB, 1GB)` });
        return z.NEVER;
      }
      if (bytes < min) {
        ctx.addIssue({ code: 'custom', message: `must be at least ${min} bytes` });
        return z.NEVER;
      }
      return bytes;
    });
/** A duration with no default: absent stays undefined (a key that applies only in some setups). */
const optionalDuration = z
  .string()
  .optional()
  .transform((text, ctx) => {
    if (text === undefined) return undefined;
    const ms = parseDuration(text);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `"${text}" is not a duration (examples: 500ms, 15s, 10m, 12h)` });
      return z.NEVER;
    }
    return ms;
  });

/** Defaults of the keys that only a shared (postgres://) store uses (docs/design.md §8). */
export const SHARED_STORE_DEFAULTS = { heartbeatMs: 2_000, changeRetentionMs: 3_600_000 } as const;

/** "host:port", "[v6]:port" or ":port". */
const listen = (fallback: string) =>
  z
    .string()
    .optional()
    .transform((text, ctx) => {
      const parsed = parseListen(text ?? fallback);
      if (parsed === undefined) {
        ctx.addIssue({ code: 'custom', message: `"${text}" is not host:port` });
        return z.NEVER;
      }
      return parsed;
    });

export function parseListen(text: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/.exec(text.trim());
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port > 65_535) return undefined;
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  return { host, port };
}

/** True for 127.0.0.0/8, ::1 and `localhost`: the only places `proxy.allowPlaintext` may listen. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

const nonEmpty = z.string().min(1, 'must not be empty');
const filePath = nonEmpty;
const tlsFiles = z.strictObject({ cert: filePath, key: filePath });
// Shared secrets guard the SCIM and admin APIs; short ones are guessable.
const bearerToken = z.string().min(16, 'must be at least 16 characters');

// PostgreSQL identifiers are at most NAMEDATALEN-1 = 63 bytes.
const roleName = nonEmpty.refine((s) => Buffer.byteLength(s) <= 63, 'PostgreSQL role names are at most 63 bytes');

const HMAC = /^HS(256|384|512)$/;
const algorithm = z.enum(['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'], {
  error: (issue) =>
    typeof issue.input === 'string' && (issue.input.toLowerCase() === 'none' || HMAC.test(issue.input))
      ? `"${issue.input}" is not allowed: rolegate never accepts unsigned or shared-secret (HMAC) tokens`
      : `unknown algorithm ${JSON.stringify(issue.input)}`,
});

const credentials = z.union([
  z.strictObject({ password: nonEmpty }),
  z.strictObject({ cert: filePath, key: filePath }),
], { error: 'credentials must be { password } or { cert, key }' });

const proxySection = z
  .strictObject({
    listen: listen('0.0.0.0:6432'),
    tls: tlsFiles.optional(),
    allowPlaintext: z.boolean().default(false),
    maxConnections: z.int().min(1).max(1_000_000).default(2000),
    loginTimeout: duration('15s'),
    drainTimeout: duration('30s'),
    allowedOptions: z.array(nonEmpty).default([]),
    // Processes serving this listener (docs/design.md §8, Workers); `auto` = the CPUs Node may use.
    workers: z.union([z.int().min(1).max(256), z.literal('auto')], { error: 'must be a number of workers (1-256) or "auto"' }).default(1),
  })
  .superRefine((p, ctx) => {
    if (p.tls === undefined && !p.allowPlaintext) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'required: clients send tokens, so the proxy listener needs TLS (or allowPlaintext on a loopback address, for development)' });
    }
    if (p.allowPlaintext && !isLoopback(p.listen.host)) {
      ctx.addIssue({ code: 'custom', path: ['allowPlaintext'], message: `only allowed when proxy.listen is a loopback address (it is ${p.listen.host})` });
    }
  });

const upstreamSection = z.strictObject({
  host: nonEmpty,
  port: z.int().min(1).max(65_535).default(5432),
  tls: z
    .strictObject({
      mode: z.enum(['disable', 'require', 'verify-ca', 'verify-full']).default('verify-full'),
      ca: filePath.optional(),
    })
    .prefault({}),
  connectTimeout: duration('10s'),
  // On by default, sized like pgbouncer's default_pool_size (20): a pooled connection is proven clean
  // before reuse (docs/design.md §2 step 7, Pool); `idle: 0` turns it off.
  pool: z.strictObject({ idle: z.int().min(0).default(20), idleTimeout: duration('60s') }).prefault({}),
});

const oidcSection = z.strictObject({
  issuer: z.url({ protocol: /^https?$/ }),
  audience: nonEmpty,
  identityClaim: nonEmpty.default('email'),
  algorithms: z.array(algorithm).min(1).default(['RS256', 'ES256', 'PS256', 'EdDSA']),
  clockTolerance: duration('30s'),
  // Off by default: Okta and Entra ID access tokens omit email_verified (an explicit false is always refused).
  requireVerifiedEmail: z.boolean().default(false),
  ca: filePath.optional(),
  introspection: z.strictObject({ clientId: nonEmpty, clientSecret: nonEmpty }).optional(),
});

const roleEntry = z.strictObject({
  role: roleName,
  groups: z.array(nonEmpty).min(1, 'list at least one group'),
  databases: z.array(nonEmpty).min(1, 'list at least one database, or "*"'),
  // Required unless provisioning is per-user (checked below): then sessions log in as the person.
  credentials: credentials.optional(),
});

// AES-256 wants exactly 32 bytes; a key of another length is a mistake, not a weaker key.
const secretKey = nonEmpty.refine((s) => /^[A-Za-z0-9+/_-]+={0,2}$/.test(s.trim()) && Buffer.from(s.trim(), 'base64').length === 32, {
  message: 'must be 32 random bytes, base64 (e.g. `openssl rand -base64 32`)',
});

const provisioningSection = z
  .strictObject({
    mode: z.enum(['off', 'per-user']).default('off'),
    adminUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL (a login with CREATEROLE)')
      .optional(),
    secretKey: secretKey.optional(),
    databases: z.array(nonEmpty.refine((d) => d !== '*', 'name each database; "*" is not allowed here')).default([]),
    ownedBy: roleName.optional(),
    // The mapped names are prefix + readable part + hash within 63 bytes: the prefix leaves room.
    rolePrefix: z
      .string()
      .default('')
      .refine((p) => Buffer.byteLength(p) <= 24, 'at most 24 bytes')
      .refine((p) => !/^pg_/i.test(p), 'must not start with pg_ (reserved for PostgreSQL)')
      .refine((p) => !/[\u0000-\u001f\u007f]/.test(p), 'must not contain control characters'),
    reconcileEvery: duration('5m').refine((ms) => ms >= 1000, 'at least 1s'),
  })
  .prefault({});

export const configSchema = z
  .strictObject({
    proxy: proxySection,
    upstream: upstreamSection,
    oidc: oidcSection,
    directory: z
      .strictObject({
        store: nonEmpty.default('sqlite:data/rolegate.db'),
        // Several instances on one postgres:// store (docs/design.md §8); a SQLite store serves one.
        heartbeat: optionalDuration,
        changeRetention: optionalDuration,
      })
      .prefault({})
      .superRefine((d, ctx) => {
        const shared = d.store.startsWith('postgres://') || d.store.startsWith('postgresql://');
        for (const key of ['heartbeat', 'changeRetention'] as const) {
          if (d[key] !== undefined && !shared) {
            ctx.addIssue({ code: 'custom', path: [key], message: 'applies only to a postgres:// store (a SQLite store serves one instance)' });
          }
        }
        if (d.heartbeat !== undefined && (d.heartbeat < 100 || d.heartbeat > 60_000)) {
          ctx.addIssue({ code: 'custom', path: ['heartbeat'], message: 'must be between 100ms and 60s' });
        }
        if (d.changeRetention !== undefined && d.changeRetention < 60_000) {
          ctx.addIssue({ code: 'custom', path: ['changeRetention'], message: 'must be at least 1m' });
        }
      })
      .transform((d) => ({
        store: d.store,
        heartbeat: d.heartbeat ?? SHARED_STORE_DEFAULTS.heartbeatMs,
        changeRetention: d.changeRetention ?? SHARED_STORE_DEFAULTS.changeRetentionMs,
      })),
    roles: z.array(roleEntry).min(1, 'list at least one role'),
    provisioning: provisioningSection,
    scim: z.strictObject({ tokens: z.array(bearerToken).min(1, 'list at least one token') }).optional(),
    admin: z
      .strictObject({ listen: listen('127.0.0.1:8080'), tokens: z.array(bearerToken).default([]), tls: tlsFiles.optional() })
      .prefault({}),
    audit: z
      .strictObject({
        file: filePath.default('audit/rolegate.jsonl'),
        statements: z.boolean().default(true),
        parameters: z.boolean().default(false),
        // A file holds at least a few lines; the largest line (a big group change) may exceed this alone.
        rotateBytes: size('100MB', 4096),
        signingKey: filePath.optional(),
        checkpointEvery: duration('10s'),
      })
      .superRefine((a, ctx) => {
        if (a.checkpointEvery < 100) ctx.addIssue({ code: 'custom', path: ['checkpointEvery'], message: 'must be at least 100ms' });
      })
      .prefault({}),
    session: z
      .strictObject({ endAtTokenExpiry: z.boolean().default(true), maxDuration: duration('12h'), idleTimeout: duration('0s') })
      .prefault({}),
    log: z
      .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .prefault({}),
  })
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.roles.forEach((r, i) => {
      if (seen.has(r.role)) ctx.addIssue({ code: 'custom', path: ['roles', i, 'role'], message: `role "${r.role}" is listed twice` });
      seen.add(r.role);
    });
    if (c.oidc.requireVerifiedEmail && c.oidc.identityClaim !== 'email') {
      ctx.addIssue({ code: 'custom', path: ['oidc', 'requireVerifiedEmail'], message: 'applies only with oidc.identityClaim: email' });
    }
    if (c.proxy.workers !== 1 && !/^postgres(ql)?:\/\//.test(c.directory.store)) {
      ctx.addIssue({ code: 'custom', path: ['proxy', 'workers'], message: 'needs a postgres:// directory store: each worker is an instance, and a SQLite store serves one instance' });
    }
    const perUser = c.provisioning.mode === 'per-user';
    if (perUser && c.provisioning.adminUrl === undefined) {
      ctx.addIssue({ code: 'custom', path: ['provisioning', 'adminUrl'], message: 'required when provisioning.mode is per-user' });
    }
    if (perUser && c.provisioning.secretKey === undefined) {
      ctx.addIssue({ code: 'custom', path: ['provisioning', 'secretKey'], message: 'required when provisioning.mode is per-user: it encrypts the personal login secrets' });
    }
    if (c.provisioning.ownedBy !== undefined && c.provisioning.databases.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['provisioning', 'databases'], message: 'list the databases where REASSIGN OWNED hands objects to provisioning.ownedBy' });
    }
    c.roles.forEach((r, i) => {
      if (!perUser && r.credentials === undefined) {
        ctx.addIssue({ code: 'custom', path: ['roles', i, 'credentials'], message: 'required: how rolegate logs in as the role ({ password } or { cert, key })' });
      }
      if (perUser && r.credentials !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['roles', i, 'credentials'], message: 'not used with provisioning.mode per-user (sessions log in as the person\'s own role): remove it' });
      }
    });
  });

export type Config = z.output<typeof configSchema>;
