// The audit log's vocabulary (docs/design.md §6): every event type with its fields, as one
// discriminated union on `type`, and the common fields every written line carries. Schema version 1.

/** `v` of every line; bumped only when a field changes meaning or is removed (additions keep it). */
export const AUDIT_SCHEMA_VERSION = 1;

/** How a statement reached the server (docs/design.md §2 step 8). */
export type StatementProtocol = 'simple' | 'extended' | 'function' | 'copy';

/**
 * What became of a statement: `skipped` = sent after an error in the same extended-protocol batch,
 * so the server ignored it until Sync; `suspended` = an Execute with a row limit that stopped early;
 * `unfinished` = the session ended before the server answered.
 */
export type StatementOutcome = 'ok' | 'error' | 'skipped' | 'suspended' | 'unfinished';

/** Per-person provisioning actions (docs/design.md §7). */
export const PROVISIONING_ACTIONS = [
  'create', 'grant', 'revoke', 'disable', 'enable', 'reassign', 'drop', 'drift_repaired',
  // Beyond the contract's list: a role renamed with its userName, options normalised, a secret set,
  // backends terminated, a record forgotten once its role is gone.
  'rename', 'normalize', 'password', 'terminate', 'forget',
] as const;
export type ProvisioningAction = (typeof PROVISIONING_ACTIONS)[number];

export interface ClientEndpoint {
  readonly address: string;
  readonly port: number;
}

export interface SessionStartEvent {
  readonly type: 'session.start';
  readonly session: string;
  readonly client: ClientEndpoint;
  readonly tls: { readonly version: string; readonly cipher: string } | null;
  readonly person: { readonly userName: string; readonly id: string };
  /** Claims that identify the token; never the token. */
  readonly token: { readonly iss: string; readonly sub: string; readonly jti: string | null; readonly exp: number | null };
  readonly groups: readonly string[];
  readonly requestedUser: string;
  readonly database: string;
  readonly role: string;
  readonly application: string;
}

export interface SessionDeniedEvent {
  readonly type: 'session.denied';
  readonly session: string;
  readonly client: ClientEndpoint;
  readonly requestedUser: string | null;
  readonly database: string | null;
  /** The precise reason the client was not told (`token_invalid:expired`, `deactivated`, ...). */
  readonly reason: string;
  readonly sqlstate: string;
}

export interface StatementEvent {
  readonly type: 'statement';
  readonly session: string;
  /** 1, 2, 3 ... within the session, in the order the client sent them. */
  readonly n: number;
  readonly protocol: StatementProtocol;
  /** The SQL (redacted; at most the bounded prefix rolegate keeps), or null (FunctionCall, unknown prepared statement). */
  readonly text: string | null;
  /** The SQL was longer than the prefix kept. */
  readonly truncated?: true;
  /** Extended protocol: the prepared statement and portal names ('' = unnamed). */
  readonly statement?: string;
  readonly portal?: string;
  /** FunctionCall: the function's OID. */
  readonly function?: number;
  /** Parameter count (null when not known); values only with `audit.parameters` (redacted). */
  readonly params: { readonly count: number | null; readonly values?: readonly (string | null)[] };
  /** COPY: the direction and the data bytes that crossed the proxy. */
  readonly copy?: { readonly direction: 'in' | 'out'; readonly bytes: number };
  readonly outcome: StatementOutcome;
  readonly tag: string | null;
  readonly rows: number | null;
  readonly sqlstate: string | null;
  readonly ms: number;
}

export interface SessionEndEvent {
  readonly type: 'session.end';
  readonly session: string;
  readonly reason: string;
  readonly ms: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly statements: number;
}

/** A SCIM member named for a reader: the id, and the userName when the directory knew it. */
export interface NamedMember {
  readonly id: string;
  readonly userName?: string;
}

export interface DirectoryChangeEvent {
  readonly type: 'directory.change';
  readonly resource: 'User' | 'Group';
  readonly id: string;
  readonly op: 'create' | 'replace' | 'patch' | 'delete';
  /** Which SCIM token wrote (`scim-token#1`), never the token. */
  readonly actor: string;
  /** The User's userName or the Group's displayName (for a delete: as it was). */
  readonly name: string | null;
  /** Attribute names that changed, never their values. */
  readonly changed: readonly string[];
  /** Users: the new `active` when it changed. */
  readonly active?: boolean;
  /** Groups: who was added and removed. */
  readonly members?: { readonly added: readonly NamedMember[]; readonly removed: readonly NamedMember[] };
  /** One line for people: `changed active; active: false`, `members +1 -0`. */
  readonly summary: string;
}

/**
 * - `ok`: done. `failed`: the database refused or broke off; retried with backoff until it works.
 * - `conflict`: a role rolegate did not create (or another person's) has the name; left alone.
 * - `retained`: a deleted person's role owns objects it cannot hand over; it stays disabled.
 */
export type ProvisioningOutcome = 'ok' | 'failed' | 'conflict' | 'retained';

export interface ProvisioningEvent {
  readonly type: 'provisioning';
  /** The person's role (its name at the time of the action). */
  readonly role: string;
  /** As in session.start: the userName and SCIM id. */
  readonly person: { readonly id: string; readonly userName: string };
  readonly action: ProvisioningAction;
  /** For `drift_repaired`: which step repaired it. */
  readonly step?: Exclude<ProvisioningAction, 'drift_repaired'>;
  readonly outcome: ProvisioningOutcome;
  readonly detail: string;
}

export interface CheckpointEvent {
  readonly type: 'checkpoint';
  /** The seq and hash of the line before this one: the head this checkpoint vouches for. */
  readonly upto: number;
  readonly head: string;
  /** Ed25519 signature (base64) over `checkpointMessage(instance, upto, head)`. */
  readonly sig: string;
  /** First 16 hex digits of SHA-256 over the public key (SPKI DER). */
  readonly keyId: string;
}

/** Every audit event, by `type`. */
export type AuditEvent =
  | SessionStartEvent
  | SessionDeniedEvent
  | StatementEvent
  | SessionEndEvent
  | DirectoryChangeEvent
  | ProvisioningEvent
  | CheckpointEvent;

export type AuditEventType = AuditEvent['type'];

export const AUDIT_EVENT_TYPES: readonly AuditEventType[] = [
  'session.start', 'session.denied', 'statement', 'session.end', 'directory.change', 'provisioning', 'checkpoint',
];

/** The fields every line has besides its event's own (docs/design.md §6). */
export interface LineCommon {
  readonly v: number;
  /** RFC 3339 UTC with milliseconds. */
  readonly ts: string;
  readonly instance: string;
  /** 1, 2, 3 ... per instance, across rotated files and restarts. */
  readonly seq: number;
  /** The previous line's hash; 64 zeros for the first line of an instance's chain. */
  readonly prev: string;
  readonly hash: string;
}

/** One line of the audit file as read back. */
export type AuditLine = AuditEvent & LineCommon;
