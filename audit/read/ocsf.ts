// OCSF 1.3.0 export of audit events (docs/design.md §3): logins, refusals and logoffs as
// Authentication (3002), directory changes of users and provisioning as Account Change (3001),
// group membership changes as Group Management (3006), statements as Datastore Activity (6005).
// Every event carries the base attributes OCSF requires (activity_id, category_uid, class_uid,
// metadata.product/version, severity_id, time, type_uid) and what a SIEM keys on: actor or user,
// src_endpoint, status, severity. Checkpoints are integrity records, not activity: not exported.
import type { AuditRecord } from './events.js';

export const OCSF_VERSION = '1.3.0';

const CATEGORY = { iam: { uid: 3, name: 'Identity & Access Management' }, application: { uid: 6, name: 'Application Activity' } } as const;
const CLASS = {
  accountChange: { uid: 3001, name: 'Account Change', category: CATEGORY.iam },
  authentication: { uid: 3002, name: 'Authentication', category: CATEGORY.iam },
  groupManagement: { uid: 3006, name: 'Group Management', category: CATEGORY.iam },
  datastoreActivity: { uid: 6005, name: 'Datastore Activity', category: CATEGORY.application },
} as const;
type OcsfClass = (typeof CLASS)[keyof typeof CLASS];

/** OCSF severity_id: 1 Informational, 2 Low, 3 Medium. */
const SEVERITY = { 1: 'Informational', 2: 'Low', 3: 'Medium' } as const;
/** OCSF status_id: 1 Success, 2 Failure, 99 Other. */
const STATUS = { 1: 'Success', 2: 'Failure', 99: 'Other' } as const;

interface SessionContext {
  readonly person: { userName: string; id: string };
  readonly client: { address: string; port: number };
  readonly role: string;
  readonly database: string;
  readonly application: string;
}

/** The sessions an export has seen start, so statements get their actor and source (bounded). */
export class OcsfContext {
  readonly #sessions = new Map<string, SessionContext>();
  constructor(readonly productVersion: string) {}

  remember(id: string, s: SessionContext): void {
    this.#sessions.set(id, s);
    // A session whose end is in a file not read would otherwise stay for ever.
    if (this.#sessions.size > 100_000) this.#sessions.delete(this.#sessions.keys().next().value as string);
  }
  get(id: string): SessionContext | undefined {
    return this.#sessions.get(id);
  }
  forget(id: string): void {
    this.#sessions.delete(id);
  }
}

function base(r: AuditRecord, ctx: OcsfContext, cls: OcsfClass, activity: { id: number; name: string }, severity: 1 | 2 | 3, status: 1 | 2 | 99, message: string) {
  return {
    activity_id: activity.id,
    activity_name: activity.name,
    category_uid: cls.category.uid,
    category_name: cls.category.name,
    class_uid: cls.uid,
    class_name: cls.name,
    type_uid: cls.uid * 100 + activity.id,
    type_name: `${cls.name}: ${activity.name}`,
    severity_id: severity,
    severity: SEVERITY[severity],
    status_id: status,
    status: STATUS[status],
    time: Date.parse(r.ts),
    timezone_offset: 0,
    message,
    metadata: {
      version: OCSF_VERSION,
      product: { name: 'rolegate', vendor_name: 'rolegate', version: ctx.productVersion },
      uid: `${r.instance}:${r.seq}`,
      original_time: r.ts,
      log_name: 'audit',
      sequence: r.seq,
    },
  };
}

const endpoint = (c: { address: string; port: number } | undefined) => (c === undefined ? { name: 'unknown' } : { ip: c.address.replace(/^::ffff:/, ''), port: c.port });
const service = (r: AuditRecord) => ({ name: 'rolegate', uid: r.instance });

/** The OCSF events for one audit record (none for a checkpoint; one per member for a group change). */
export function toOcsf(r: AuditRecord, ctx: OcsfContext): object[] {
  switch (r.type) {
    case 'session.start': {
      const s: SessionContext = {
        person: r.person as SessionContext['person'],
        client: r.client as SessionContext['client'],
        role: String(r.role),
        database: String(r.database),
        application: String(r.application ?? ''),
      };
      ctx.remember(r.session as string, s);
      return [{
        ...base(r, ctx, CLASS.authentication, { id: 1, name: 'Logon' }, 1, 1, `${s.person.userName} logged in as ${s.role} to ${s.database}`),
        user: { name: s.person.userName, uid: s.person.id },
        src_endpoint: endpoint(s.client),
        service: service(r),
        session: { uid: r.session, issuer: (r.token as { iss?: string } | undefined)?.iss },
        auth_protocol: 'OIDC bearer token',
        auth_protocol_id: 99,
        is_remote: true,
        unmapped: { role: s.role, database: s.database, application: s.application, groups: r.groups, tls: r.tls, token: r.token },
      }];
    }
    case 'session.denied': {
      const user = typeof r.requestedUser === 'string' && r.requestedUser !== '' ? r.requestedUser : 'unknown';
      return [{
        ...base(r, ctx, CLASS.authentication, { id: 1, name: 'Logon' }, 3, 2, `login refused for ${user}: ${String(r.reason)}`),
        user: { name: user },
        src_endpoint: endpoint(r.client as { address: string; port: number }),
        service: service(r),
        session: { uid: r.session },
        status_code: r.sqlstate,
        status_detail: r.reason,
        is_remote: true,
        unmapped: { database: r.database },
      }];
    }
    case 'session.end': {
      const s = ctx.get(r.session as string);
      ctx.forget(r.session as string);
      return [{
        ...base(r, ctx, CLASS.authentication, { id: 2, name: 'Logoff' }, 1, 1, `session ended: ${String(r.reason)}`),
        user: s === undefined ? { name: 'unknown' } : { name: s.person.userName, uid: s.person.id },
        src_endpoint: endpoint(s?.client),
        service: service(r),
        session: { uid: r.session },
        status_detail: r.reason,
        duration: r.ms,
        unmapped: { bytesIn: r.bytesIn, bytesOut: r.bytesOut, statements: r.statements },
      }];
    }
    case 'statement': {
      const s = ctx.get(r.session as string);
      const ok = r.outcome === 'ok' || r.outcome === 'suspended';
      const status = ok ? 1 : r.outcome === 'error' ? 2 : 99;
      const text = typeof r.text === 'string' ? r.text : '';
      return [{
        ...base(r, ctx, CLASS.datastoreActivity, datastoreActivity(r), status === 2 ? 2 : 1, status, `${String(r.outcome)}: ${text || String(r.protocol)}`.slice(0, 300)),
        actor: { user: s === undefined ? { name: 'unknown' } : { name: s.person.userName, uid: s.person.id }, session: { uid: r.session }, ...(s?.application ? { app_name: s.application } : {}) },
        src_endpoint: endpoint(s?.client),
        database: { name: s?.database ?? 'unknown', type: 'Relational', type_id: 1 },
        query_info: { query_string: text },
        type_id: 1,
        type: 'Database',
        duration: r.ms,
        ...(r.sqlstate ? { status_code: r.sqlstate } : {}),
        status_detail: r.outcome,
        unmapped: { protocol: r.protocol, n: r.n, tag: r.tag, rows: r.rows, params: r.params, copy: r.copy, role: s?.role, statement: r.statement, portal: r.portal, function: r.function },
      }];
    }
    case 'directory.change':
      return r.resource === 'User' ? [accountChange(r, ctx)] : groupChanges(r, ctx);
    case 'provisioning': {
      const action = String(r.action);
      const person = r.person as { id: string; userName: string };
      const activity = PROVISIONING_ACTIVITY[action] ?? { id: 99, name: 'Other' };
      const status = r.outcome === 'ok' ? 1 : r.outcome === 'failed' ? 2 : 99;
      return [{
        ...base(r, ctx, CLASS.accountChange, activity, status === 2 ? 3 : 1, status, `provisioning ${action} for ${person.userName}: ${String(r.outcome)}`),
        user: { name: person.userName, uid: person.id, type: 'User' },
        actor: { app_name: 'rolegate provisioning' },
        status_detail: r.detail,
        unmapped: { role: r.role, action },
      }];
    }
    default:
      return [];
  }
}

const PROVISIONING_ACTIVITY: Readonly<Record<string, { id: number; name: string }>> = {
  create: { id: 1, name: 'Create' },
  enable: { id: 2, name: 'Enable' },
  disable: { id: 5, name: 'Disable' },
  drop: { id: 6, name: 'Delete' },
  grant: { id: 7, name: 'Attach Policy' },
  revoke: { id: 8, name: 'Detach Policy' },
};

function accountChange(r: AuditRecord, ctx: OcsfContext): object {
  const activity =
    r.op === 'create' ? { id: 1, name: 'Create' }
    : r.op === 'delete' ? { id: 6, name: 'Delete' }
    : r.active === false ? { id: 5, name: 'Disable' }
    : r.active === true ? { id: 2, name: 'Enable' }
    : { id: 99, name: 'Other' };
  const name = String(r.name ?? r.id);
  return {
    ...base(r, ctx, CLASS.accountChange, activity, activity.id === 5 || activity.id === 6 ? 2 : 1, 1, `${name}: ${String(r.summary)} (${String(r.actor)})`),
    user: { name, uid: r.id, type: 'User' },
    actor: { app_name: 'SCIM', user: { name: r.actor, type: 'System' } },
    unmapped: { op: r.op, changed: r.changed, summary: r.summary },
  };
}

/** One Group Management event per member added or removed; one with the group alone otherwise. */
function groupChanges(r: AuditRecord, ctx: OcsfContext): object[] {
  const group = { name: String(r.name ?? r.id), uid: r.id };
  const actor = { app_name: 'SCIM', user: { name: r.actor, type: 'System' } };
  const m = r.members as { added?: { id: string; userName?: string }[]; removed?: { id: string; userName?: string }[] } | undefined;
  const out: object[] = [];
  const member = (x: { id: string; userName?: string }, activity: { id: number; name: string }, verb: string) => ({
    ...base(r, ctx, CLASS.groupManagement, activity, 1, 1, `${x.userName ?? x.id} ${verb} ${group.name} (${String(r.actor)})`),
    group,
    user: { name: x.userName ?? x.id, uid: x.id, type: 'User' },
    actor,
    unmapped: { op: r.op, summary: r.summary },
  });
  for (const x of m?.added ?? []) out.push(member(x, { id: 3, name: 'Add User' }, 'added to'));
  for (const x of m?.removed ?? []) out.push(member(x, { id: 4, name: 'Remove User' }, 'removed from'));
  if (out.length === 0) {
    // A group created empty, renamed or deleted: no member to name, so the change itself is the
    // privilege that moved (groups grant roles, docs/design.md §2 step 6).
    out.push({
      ...base(r, ctx, CLASS.groupManagement, { id: 99, name: 'Other' }, r.op === 'delete' ? 2 : 1, 1, `group ${group.name} ${String(r.op)}: ${String(r.summary)} (${String(r.actor)})`),
      group,
      privileges: [`group ${String(r.op)}`],
      actor,
      unmapped: { op: r.op, changed: r.changed, summary: r.summary },
    });
  }
  return out;
}

/** Datastore Activity activity_id from the command: 1 Read, 2 Update, 4 Query, 5 Write, 6 Create, 7 Delete, 99 Other. */
function datastoreActivity(r: AuditRecord): { id: number; name: string } {
  const copy = r.copy as { direction: string } | undefined;
  if (copy !== undefined) return copy.direction === 'in' ? { id: 5, name: 'Write' } : { id: 1, name: 'Read' };
  const word = (typeof r.tag === 'string' && r.tag !== '' ? r.tag : typeof r.text === 'string' ? r.text.trim() : '').split(/[\s;(]/, 1)[0]?.toUpperCase() ?? '';
  switch (word) {
    case 'SELECT':
    case 'WITH':
    case 'FETCH':
    case 'SHOW':
      return { id: 4, name: 'Query' };
    case 'INSERT':
      return { id: 5, name: 'Write' };
    case 'UPDATE':
    case 'MERGE':
    case 'ALTER':
      return { id: 2, name: 'Update' };
    case 'DELETE':
    case 'TRUNCATE':
    case 'DROP':
      return { id: 7, name: 'Delete' };
    case 'CREATE':
      return { id: 6, name: 'Create' };
    default:
      return { id: 99, name: 'Other' };
  }
}
