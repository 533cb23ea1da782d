// What instances say to each other over NOTIFY (docs/design.md §8): "end this session of yours" and
// its answer, and "this CancelRequest carries a key you issued". Each instance LISTENs on a channel of
// its own; payloads are read as untrusted text and narrowed here, once.

/** Asks the holding instance to end a session (an admin DELETE reached another instance). */
export interface KillRequest {
  readonly op: 'kill';
  readonly session: string;
  /** Matches the reply to the request. */
  readonly req: string;
  /** The asking instance's id: the reply goes to its channel. */
  readonly from: string;
}
export interface KillReply {
  readonly op: 'kill-reply';
  readonly req: string;
  readonly ended: boolean;
}
/** A CancelRequest for a key this instance issued, received by another one (PostgreSQL answers none). */
export interface CancelForward {
  readonly op: 'cancel';
  readonly pid: number;
  /** The secret as hex; compared in constant time by the instance that issued it. */
  readonly secret: string;
}
export type ClusterMessage = KillRequest | KillReply | CancelForward;

/** The channel instance `id` LISTENs on (ids are 32 hex digits, so the name fits PostgreSQL's 63 bytes). */
export function instanceChannel(id: string): string {
  return `rolegate_instance_${id}`;
}

export function encodeMessage(m: ClusterMessage): string {
  return JSON.stringify(m);
}

/** The message in a payload, or undefined for anything else (ignored: NOTIFY carries no proof of origin). */
export function decodeMessage(payload: string): ClusterMessage | undefined {
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const str = (x: unknown): x is string => typeof x === 'string' && x.length > 0 && x.length <= 200;
  const instanceId = (x: unknown): x is string => typeof x === 'string' && /^[0-9a-f]{32}$/.test(x);
  switch (o.op) {
    case 'kill':
      return str(o.session) && str(o.req) && instanceId(o.from) ? { op: 'kill', session: o.session, req: o.req, from: o.from } : undefined;
    case 'kill-reply':
      return str(o.req) && typeof o.ended === 'boolean' ? { op: 'kill-reply', req: o.req, ended: o.ended } : undefined;
    case 'cancel':
      return Number.isInteger(o.pid) && typeof o.secret === 'string' && /^(?:[0-9a-f]{2}){4,256}$/.test(o.secret)
        ? { op: 'cancel', pid: o.pid as number, secret: o.secret }
        : undefined;
    default:
      return undefined;
  }
}
