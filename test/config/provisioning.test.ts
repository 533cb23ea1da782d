// The `provisioning` block (docs/design.md §4 and §7): per-user mode needs a login URL and a 32-byte
// key, takes roles without credentials (sessions log in as the person), and names every mistake.
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parseConfigText, type ConfigResult } from '../../server/config/load.js';

const KEY = randomBytes(32).toString('base64');
const BASE = `
proxy: { tls: { cert: gw.crt, key: gw.key } }
upstream: { host: db }
oidc: { issuer: "https://idp.example.com/", audience: rolegate }
`;
const PER_USER = `${BASE}
roles: [{ role: app_reader, groups: [analysts], databases: [app] }, { role: app_writer, groups: [engineering], databases: [app] }]
provisioning:
  mode: per-user
  adminUrl: "\${ROLEGATE_PROVISIONER_URL}"
  secretKey: "\${ROLEGATE_SECRET_KEY}"
  databases: [app]
  ownedBy: retired_objects
  rolePrefix: ""
  reconcileEvery: 5m
`;
const ENV = { ROLEGATE_PROVISIONER_URL: 'postgres://provisioner@db.internal/app', ROLEGATE_SECRET_KEY: KEY };

function problems(r: ConfigResult): string[] {
  return r.ok ? [] : r.problems.map((p) => `${p.path}: ${p.message}`);
}

describe('provisioning config', () => {
  it('accepts per-user mode as the contract writes it, with roles that carry no credentials', () => {
    const r = parseConfigText(PER_USER, ENV, '/x');
    expect(problems(r)).toEqual([]);
    if (!r.ok) return;
    expect(r.config.provisioning).toEqual({
      mode: 'per-user',
      adminUrl: ENV.ROLEGATE_PROVISIONER_URL,
      secretKey: KEY,
      databases: ['app'],
      ownedBy: 'retired_objects',
      rolePrefix: '',
      reconcileEvery: 300_000,
    });
    expect(r.config.roles[0]?.credentials).toBeUndefined();
  });

  it('defaults: off, no databases, no prefix, reconcile every 5 minutes', () => {
    const r = parseConfigText(`${BASE}roles: [{ role: r, groups: [g], databases: ["*"], credentials: { password: p } }]\n`, {}, '/x');
    expect(r.ok && r.config.provisioning).toEqual({ mode: 'off', databases: [], rolePrefix: '', reconcileEvery: 300_000 });
  });

  it.each([
    ['no adminUrl', (t: string) => t.replace(/ {2}adminUrl: .*\n/, ''), 'provisioning.adminUrl: required when provisioning.mode is per-user'],
    ['no secretKey', (t: string) => t.replace(/ {2}secretKey: .*\n/, ''), 'provisioning.secretKey: required when provisioning.mode is per-user'],
    ['a short secretKey', (t: string) => t.replace('"${ROLEGATE_SECRET_KEY}"', randomBytes(16).toString('base64')), 'provisioning.secretKey: must be 32 random bytes, base64'],
    ['a secretKey that is not base64', (t: string) => t.replace('"${ROLEGATE_SECRET_KEY}"', '"not base64 at all, is it?!"'), 'provisioning.secretKey: must be 32 random bytes, base64'],
    ['an adminUrl that is not PostgreSQL', (t: string) => t.replace('"${ROLEGATE_PROVISIONER_URL}"', 'mysql://db/app'), 'provisioning.adminUrl: must be a postgres:// or postgresql:// URL'],
    ['credentials in per-user mode', (t: string) => t.replace('databases: [app] }, {', 'databases: [app], credentials: { password: p } }, {'), `roles[0].credentials: not used with provisioning.mode per-user`],
    ['ownedBy without databases', (t: string) => t.replace('databases: [app]\n', 'databases: []\n'), 'provisioning.databases: list the databases where REASSIGN OWNED hands objects to provisioning.ownedBy'],
    ['"*" as a database', (t: string) => t.replace('databases: [app]\n', 'databases: ["*"]\n'), 'provisioning.databases[0]: name each database; "*" is not allowed here'],
    ['a pg_ rolePrefix', (t: string) => t.replace('rolePrefix: ""', 'rolePrefix: pg_people_'), 'provisioning.rolePrefix: must not start with pg_'],
    ['a long rolePrefix', (t: string) => t.replace('rolePrefix: ""', `rolePrefix: ${'p'.repeat(25)}`), 'provisioning.rolePrefix: at most 24 bytes'],
    ['a reconcileEvery under a second', (t: string) => t.replace('reconcileEvery: 5m', 'reconcileEvery: 10ms'), 'provisioning.reconcileEvery: at least 1s'],
    ['an ownedBy over 63 bytes', (t: string) => t.replace('ownedBy: retired_objects', `ownedBy: ${'o'.repeat(64)}`), 'provisioning.ownedBy: PostgreSQL role names are at most 63 bytes'],
  ])('reports %s with its key path', (_name, change, expected) => {
    const found = problems(parseConfigText(change(PER_USER), ENV, '/x'));
    expect(found.some((p) => p.includes(expected)), `problems were: ${JSON.stringify(found)}`).toBe(true);
  });

  it('off mode still needs credentials for every role', () => {
    const found = problems(parseConfigText(`${BASE}roles: [{ role: r, groups: [g], databases: ["*"] }]\n`, {}, '/x'));
    expect(found).toEqual(['roles[0].credentials: required: how rolegate logs in as the role ({ password } or { cert, key })']);
  });
});
