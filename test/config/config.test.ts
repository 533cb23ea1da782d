import { describe, expect, it } from 'vitest';
import { parseConfigText, type ConfigResult } from '../../server/config/load.js';

// The docs/design.md §4 example, verbatim apart from the commented-out line.
const EXAMPLE = `
proxy:
  listen: 0.0.0.0:6432
  tls: { cert: certs/gw.crt, key: certs/gw.key }
  allowPlaintext: false          # dev only, loopback only
  maxConnections: 2000
  loginTimeout: 15s
  drainTimeout: 30s
  allowedOptions: [statement_timeout, lock_timeout, search_path]
upstream:
  host: db.internal
  port: 5432
  tls: { mode: verify-full, ca: certs/db-ca.crt }
  pool: { idle: 20, idleTimeout: 60s }
oidc:
  issuer: https://idp.example.com/
  audience: rolegate
  identityClaim: email
  algorithms: [RS256, ES256, PS256, EdDSA]
  clockTolerance: 30s
  requireVerifiedEmail: false            # true: with identityClaim email, email_verified must be present and true
directory:
  store: sqlite:data/rolegate.db
roles:
  - role: app_reader
    groups: [analysts, engineering]
    databases: [app]
    credentials: { password: "\${APP_READER_PASSWORD}" }
  - role: app_writer
    groups: [engineering]
    databases: [app]
    credentials: { cert: certs/app_writer.crt, key: certs/app_writer.key }
provisioning:
  mode: off
  adminUrl: "\${ROLEGATE_PROVISIONER_URL}"
  secretKey: "\${ROLEGATE_SECRET_KEY}"
  databases: [app]
  ownedBy: retired_objects
  rolePrefix: ""
  reconcileEvery: 5m
scim:
  tokens: ["\${ROLEGATE_SCIM_TOKEN}"]
admin:
  listen: 127.0.0.1:8080
  tokens: ["\${ROLEGATE_ADMIN_TOKEN}"]
  tls: { cert: certs/admin.crt, key: certs/admin.key }
audit:
  file: audit/rolegate.jsonl
  statements: true
  parameters: false
session:
  endAtTokenExpiry: true
  maxDuration: 12h
  idleTimeout: 0s
log:
  level: info
`;

const ENV = {
  APP_READER_PASSWORD: 'reader-secret',
  ROLEGATE_PROVISIONER_URL: 'postgres://admin@db.internal/app',
  ROLEGATE_SECRET_KEY: Buffer.alloc(32, 7).toString('base64'),
  ROLEGATE_SCIM_TOKEN: 'scim-token-0123456789abcdef',
  ROLEGATE_ADMIN_TOKEN: 'admin-token-0123456789abcdef',
};

const MINIMAL = `
proxy: { tls: { cert: gw.crt, key: gw.key } }
upstream: { host: db }
oidc: { issuer: "https://idp.example.com/", audience: rolegate }
roles: [{ role: r, groups: [g], databases: ["*"], credentials: { password: p } }]
`;

function problems(r: ConfigResult): string[] {
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('config file', () => {
  it('accepts the docs/design.md §4 example, expands ${ENV}, converts durations and resolves paths', () => {
    const r = parseConfigText(EXAMPLE, ENV, '/etc/rolegate');
    expect(problems(r)).toEqual([]);
    if (!r.ok) return;
    const c = r.config;
    expect(c.proxy.listen).toEqual({ host: '0.0.0.0', port: 6432 });
    expect(c.proxy.loginTimeout).toBe(15_000);
    expect(c.session.maxDuration).toBe(12 * 3_600_000);
    expect(c.session.idleTimeout).toBe(0);
    expect(c.proxy.tls).toEqual({ cert: '/etc/rolegate/certs/gw.crt', key: '/etc/rolegate/certs/gw.key' });
    expect(c.directory.store).toBe('sqlite:/etc/rolegate/data/rolegate.db');
    expect(c.roles[0]?.credentials).toEqual({ password: 'reader-secret' });
    expect(c.scim?.tokens).toEqual([ENV.ROLEGATE_SCIM_TOKEN]);
    expect(Object.isFrozen(c.roles[0])).toBe(true);
  });

  it('fills safe defaults', () => {
    const r = parseConfigText(MINIMAL, {}, '/x');
    expect(problems(r)).toEqual([]);
    if (!r.ok) return;
    expect(r.config.proxy.allowPlaintext).toBe(false);
    expect(r.config.proxy.maxConnections).toBe(2000);
    expect(r.config.upstream.tls.mode).toBe('verify-full');
    expect(r.config.oidc.algorithms).toEqual(['RS256', 'ES256', 'PS256', 'EdDSA']);
    expect(r.config.oidc.identityClaim).toBe('email');
    expect(r.config.oidc.clockTolerance).toBe(30_000);
    expect(r.config.oidc.requireVerifiedEmail).toBe(false);
    expect(r.config.admin.listen).toEqual({ host: '127.0.0.1', port: 8080 });
    expect(r.config.audit.parameters).toBe(false);
    expect(r.config.session.endAtTokenExpiry).toBe(true);
  });

  it.each([
    ['a missing environment variable', EXAMPLE, { ...ENV, ROLEGATE_SCIM_TOKEN: undefined }, 'scim.tokens[0]: environment variable ROLEGATE_SCIM_TOKEN is not set'],
    ['an unknown key', MINIMAL + 'log: { levle: debug }\n', {}, 'log.levle: unknown key'],
    ['an unknown top-level key', MINIMAL + 'prxy: {}\n', {}, 'prxy: unknown key'],
    ['a bad duration', MINIMAL.replace('proxy: {', 'proxy: { loginTimeout: 15 seconds,'), {}, 'proxy.loginTimeout: "15 seconds" is not a duration'],
    ['alg none', MINIMAL.replace('audience: rolegate', 'audience: rolegate, algorithms: [none]'), {}, 'oidc.algorithms[0]: "none" is not allowed'],
    ['requireVerifiedEmail without the email claim', MINIMAL.replace('audience: rolegate', 'audience: rolegate, identityClaim: upn, requireVerifiedEmail: true'), {}, 'oidc.requireVerifiedEmail: applies only with oidc.identityClaim: email'],
    ['a non-boolean requireVerifiedEmail', MINIMAL.replace('audience: rolegate', 'audience: rolegate, requireVerifiedEmail: sometimes'), {}, 'oidc.requireVerifiedEmail:'],
    ['HMAC', MINIMAL.replace('audience: rolegate', 'audience: rolegate, algorithms: [RS256, HS256]'), {}, 'oidc.algorithms[1]: "HS256" is not allowed'],
    ['no TLS without allowPlaintext', MINIMAL.replace('proxy: { tls: { cert: gw.crt, key: gw.key } }', 'proxy: {}'), {}, 'proxy.tls: required'],
    ['plaintext on a public address', MINIMAL.replace('proxy: { tls: { cert: gw.crt, key: gw.key } }', 'proxy: { allowPlaintext: true }'), {}, 'proxy.allowPlaintext: only allowed when proxy.listen is a loopback address'],
    ['a missing section', 'proxy: { tls: { cert: a, key: b } }\n', {}, 'upstream: required'],
    ['a missing role key', MINIMAL.replace('groups: [g], ', ''), {}, 'roles[0].groups: required'],
    ['bad credentials', MINIMAL.replace('credentials: { password: p }', 'credentials: { token: p }'), {}, 'roles[0].credentials: credentials must be'],
    ['a short SCIM token', MINIMAL + 'scim: { tokens: [short] }\n', {}, 'scim.tokens[0]: must be at least 16 characters'],
    ['a duplicate role', MINIMAL.replace(']\n', ', { role: r, groups: [g], databases: ["*"], credentials: { password: p } }]\n'), {}, 'roles[1].role: role "r" is listed twice'],
    ['invalid YAML', 'proxy: [unclosed', {}, 'line 1: YAML:'],
    ['duplicate YAML keys', MINIMAL + 'log: {}\nlog: {}\n', {}, 'YAML:'],
    ['bad listen', MINIMAL.replace('proxy: {', 'proxy: { listen: "6432",'), {}, 'proxy.listen: "6432" is not host:port'],
    ['a heartbeat with a SQLite store', MINIMAL + 'directory: { store: "sqlite:x.db", heartbeat: 1s }\n', {}, 'directory.heartbeat: applies only to a postgres:// store'],
    ['a change retention with the default (SQLite) store', MINIMAL + 'directory: { changeRetention: 1h }\n', {}, 'directory.changeRetention: applies only to a postgres:// store'],
    ['a heartbeat too short', MINIMAL + 'directory: { store: "postgres://db/x", heartbeat: 10ms }\n', {}, 'directory.heartbeat: must be between 100ms and 60s'],
    ['a change retention too short', MINIMAL + 'directory: { store: "postgres://db/x", changeRetention: 5s }\n', {}, 'directory.changeRetention: must be at least 1m'],
  ])('reports %s with its key path', (_name, text, env, expected) => {
    const found = problems(parseConfigText(text, env, '/x'));
    expect(found.some((p) => p.includes(expected)), `problems were: ${JSON.stringify(found)}`).toBe(true);
  });

  it('takes the heartbeat and change retention of a shared postgres:// store, with their defaults', () => {
    const set = parseConfigText(MINIMAL + 'directory: { store: "postgres://db/x", heartbeat: 500ms, changeRetention: 2h }\n', {}, '/x');
    expect(problems(set)).toEqual([]);
    if (set.ok) expect(set.config.directory).toEqual({ store: 'postgres://db/x', heartbeat: 500, changeRetention: 7_200_000 });
    const unset = parseConfigText(MINIMAL + 'directory: { store: "postgresql://db/x" }\n', {}, '/x');
    if (unset.ok) expect(unset.config.directory).toEqual({ store: 'postgresql://db/x', heartbeat: 2_000, changeRetention: 3_600_000 });
    else expect(problems(unset)).toEqual([]);
  });

  it('allows plaintext on loopback only', () => {
    const text = MINIMAL.replace('proxy: { tls: { cert: gw.crt, key: gw.key } }', 'proxy: { allowPlaintext: true, listen: "127.0.0.1:6432" }');
    expect(problems(parseConfigText(text, {}, '/x'))).toEqual([]);
  });
});
