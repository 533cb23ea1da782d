// The OCSF export (docs/design.md §3), one test per class against the required attributes of OCSF
// 1.3.0: the base event's (activity_id, category_uid, class_uid, metadata with product.name,
// product.vendor_name and version, severity_id, time, type_uid = class_uid * 100 + activity_id) and
// each class's own: Authentication 3002 `user` and one of `service`/`dst_endpoint`; Account Change
// 3001 `user`; Group Management 3006 `group` and one of `privileges`/`user`; Datastore Activity 6005
// `actor` (with one of user/session/app_name/process), `src_endpoint` and one of
// `database`/`databucket`/`table`. Objects: user has name or uid; network endpoints ip, name or uid.
import { describe, expect, it } from 'vitest';
import { OcsfContext, toOcsf } from '../../audit/read/ocsf.js';
import type { AuditRecord } from '../../audit/read/events.js';

const common = (type: string, seq: number) => ({ v: 1, ts: '2026-11-23T09:05:00.123Z', type, instance: 'gw-1', seq, prev: '0'.repeat(64), hash: 'f'.repeat(64) });
const start = { ...common('session.start', 1), session: 's-1', client: { address: '10.1.2.3', port: 51000 }, tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' }, person: { userName: 'alice@corp.com', id: 'u-1' }, token: { iss: 'https://idp/', sub: 'alice', jti: null, exp: 1 }, groups: ['engineering'], requestedUser: 'alice@corp.com', database: 'app', role: 'app_writer', application: 'psql' } as AuditRecord;

function expectBase(e: Record<string, any>, classUid: number, categoryUid: number): void {
  for (const key of ['activity_id', 'category_uid', 'class_uid', 'metadata', 'severity_id', 'time', 'type_uid']) expect(e, key).toHaveProperty(key);
  expect(e.class_uid).toBe(classUid);
  expect(e.category_uid).toBe(categoryUid);
  expect(e.type_uid).toBe(classUid * 100 + e.activity_id);
  expect(Number.isInteger(e.time)).toBe(true);
  expect(e.time).toBe(Date.parse('2026-11-23T09:05:00.123Z'));
  expect(e.metadata.version).toBe('1.3.0');
  expect(e.metadata.product).toMatchObject({ name: 'rolegate', vendor_name: 'rolegate' });
  expect([1, 2, 3, 4, 5, 6, 99]).toContain(e.severity_id);
  expect([0, 1, 2, 99]).toContain(e.status_id);
}
const hasOneOf = (e: Record<string, any>, keys: string[]) => expect(keys.some((k) => e[k] !== undefined), keys.join('|')).toBe(true);
const user = (u: Record<string, any>) => hasOneOf(u, ['name', 'uid']);
const endpoint = (n: Record<string, any>) => hasOneOf(n, ['ip', 'name', 'uid', 'hostname']);

describe('OCSF 1.3.0 export', () => {
  it('Authentication (3002): logon, refused logon, logoff', () => {
    const ctx = new OcsfContext('0.1.0');
    const denied = { ...common('session.denied', 2), session: 's-2', client: { address: '10.9.9.9', port: 40000 }, requestedUser: 'mallory@corp.com', database: 'app', reason: 'token_invalid:expired', sqlstate: '28P01' } as AuditRecord;
    const end = { ...common('session.end', 3), session: 's-1', reason: 'revoked', ms: 42_000, bytesIn: 10, bytesOut: 20, statements: 14 } as AuditRecord;
    const [logon] = toOcsf(start, ctx) as Record<string, any>[];
    const [refused] = toOcsf(denied, ctx) as Record<string, any>[];
    const [logoff] = toOcsf(end, ctx) as Record<string, any>[];
    for (const e of [logon!, refused!, logoff!]) {
      expectBase(e, 3002, 3);
      expect(e.user).toBeDefined();
      user(e.user);
      hasOneOf(e, ['service', 'dst_endpoint']);
      endpoint(e.src_endpoint);
    }
    expect(logon).toMatchObject({ activity_id: 1, status_id: 1, user: { name: 'alice@corp.com', uid: 'u-1' }, src_endpoint: { ip: '10.1.2.3', port: 51000 } });
    expect(refused).toMatchObject({ activity_id: 1, status_id: 2, severity_id: 3, status_code: '28P01', status_detail: 'token_invalid:expired', user: { name: 'mallory@corp.com' } });
    expect(logoff).toMatchObject({ activity_id: 2, status_id: 1, status_detail: 'revoked', user: { name: 'alice@corp.com' }, src_endpoint: { ip: '10.1.2.3' } });
  });

  it('Account Change (3001): user created, deactivated, deleted; provisioning', () => {
    const ctx = new OcsfContext('0.1.0');
    const change = (op: string, extra: object) => ({ ...common('directory.change', 4), resource: 'User', id: 'u-1', op, actor: 'scim-token#1', name: 'alice@corp.com', changed: [], summary: 's', ...extra }) as AuditRecord;
    const events = [
      toOcsf(change('create', { active: true }), ctx)[0],
      toOcsf(change('patch', { active: false, changed: ['active'] }), ctx)[0],
      toOcsf(change('delete', {}), ctx)[0],
      toOcsf({ ...common('provisioning', 5), role: 'alice@corp.com', person: { id: 'u-1', userName: 'alice@corp.com' }, action: 'grant', outcome: 'ok', detail: 'app_writer' } as AuditRecord, ctx)[0],
    ] as Record<string, any>[];
    for (const e of events) {
      expectBase(e, 3001, 3);
      user(e.user);
    }
    expect(events.map((e) => e.activity_id)).toEqual([1, 5, 6, 7]);
    expect(events[1]).toMatchObject({ user: { name: 'alice@corp.com', uid: 'u-1' }, actor: { user: { name: 'scim-token#1' } } });
  });

  it('Group Management (3006): one event per member added or removed, with the group', () => {
    const ctx = new OcsfContext('0.1.0');
    const g = { ...common('directory.change', 6), resource: 'Group', id: 'g-1', op: 'patch', actor: 'scim-token#2', name: 'engineering', changed: [], members: { added: [{ id: 'u-1', userName: 'alice@corp.com' }], removed: [{ id: 'u-2' }] }, summary: 'members +1 -1' } as AuditRecord;
    const events = toOcsf(g, ctx) as Record<string, any>[];
    expect(events.map((e) => [e.activity_id, e.user.name])).toEqual([[3, 'alice@corp.com'], [4, 'u-2']]);
    const renamed = toOcsf({ ...g, members: undefined, summary: 'changed displayName' } as AuditRecord, ctx) as Record<string, any>[];
    for (const e of [...events, ...renamed]) {
      expectBase(e, 3006, 3);
      expect(e.group).toMatchObject({ name: 'engineering', uid: 'g-1' });
      hasOneOf(e, ['privileges', 'user']);
    }
  });

  it('Datastore Activity (6005): statements with actor, source and database', () => {
    const ctx = new OcsfContext('0.1.0');
    toOcsf(start, ctx);
    const stmt = (seq: number, extra: object) => ({ ...common('statement', seq), session: 's-1', n: seq, protocol: 'simple', params: { count: 0 }, rows: 1, ms: 0.5, ...extra }) as AuditRecord;
    const events = [
      toOcsf(stmt(7, { text: 'select 1', outcome: 'ok', tag: 'SELECT 1', sqlstate: null }), ctx)[0],
      toOcsf(stmt(8, { text: 'delete from t', outcome: 'error', tag: null, sqlstate: '42501' }), ctx)[0],
      toOcsf(stmt(9, { text: 'copy t from stdin', protocol: 'copy', copy: { direction: 'in', bytes: 10 }, outcome: 'ok', tag: 'COPY 1', sqlstate: null }), ctx)[0],
    ] as Record<string, any>[];
    for (const e of events) {
      expectBase(e, 6005, 6);
      hasOneOf(e.actor, ['user', 'session', 'app_name', 'process']);
      user(e.actor.user);
      endpoint(e.src_endpoint);
      hasOneOf(e, ['database', 'databucket', 'table']);
      expect(e.database).toMatchObject({ name: 'app' });
    }
    expect(events.map((e) => [e.activity_id, e.status_id])).toEqual([[4, 1], [7, 2], [5, 1]]);
    expect(events[1]).toMatchObject({ status_code: '42501', query_info: { query_string: 'delete from t' }, actor: { user: { name: 'alice@corp.com' } }, src_endpoint: { ip: '10.1.2.3' } });
    expect(toOcsf({ ...common('checkpoint', 10), upto: 9, head: 'a', sig: 'b', keyId: 'c' } as AuditRecord, ctx)).toEqual([]);
  });
});
