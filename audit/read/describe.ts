// One line of words for each audit event, as the `search` table and the `timeline` story show it.
import type { AuditRecord } from './events.js';
import { humanDuration } from './table.js';

/** Why a session ended, in words (docs/design.md §2 step 9). */
export const END_WORDS: Readonly<Record<string, string>> = {
  client_exit: 'client disconnected',
  upstream_closed: 'database closed the connection',
  error: 'protocol error',
  revoked: 'access revoked',
  token_expired: 'token expired',
  admin_kill: 'terminated by administrator',
  shutdown: 'server shutting down',
  max_duration: 'maximum duration reached',
  idle_timeout: 'idle for too long',
  audit_unavailable: 'audit log unavailable',
};

type Member = { id: string; userName?: string };
const names = (ms: readonly Member[] | undefined): string => (ms ?? []).map((m) => m.userName ?? m.id).join(', ');

/** Who an event is about or by: the person, the requested user, the SCIM actor. */
export function whoOf(r: AuditRecord, personOfSession: (id: string) => string | undefined): string {
  switch (r.type) {
    case 'session.start':
      return (r.person as { userName: string }).userName;
    case 'statement':
    case 'session.end':
      return personOfSession(r.session as string) ?? '';
    case 'session.denied':
      return String(r.requestedUser ?? '');
    case 'directory.change':
      return String(r.actor);
    case 'provisioning':
      return (r.person as { userName: string }).userName;
    default:
      return '';
  }
}

/** What happened, in one line. */
export function describeEvent(r: AuditRecord): string {
  switch (r.type) {
    case 'session.start': {
      const c = r.client as { address: string; port: number };
      const app = r.application ? ` (${String(r.application)})` : '';
      return `login as ${String(r.role)} to ${String(r.database)} from ${c.address}${app}`;
    }
    case 'session.denied': {
      const c = r.client as { address: string };
      return `login refused: ${String(r.reason)} (${String(r.sqlstate)}) from ${c.address}${r.database ? ` to ${String(r.database)}` : ''}`;
    }
    case 'statement': {
      const outcome = r.outcome === 'ok' ? '' : `${String(r.outcome)}${r.sqlstate ? ` ${String(r.sqlstate)}` : ''}: `;
      const what = r.text === null ? (r.function !== undefined ? `function ${String(r.function)}` : '(statement text unknown)') : String(r.text).replace(/\s+/g, ' ');
      const copy = r.copy as { direction: string; bytes: number } | undefined;
      const result = r.tag ? ` -> ${String(r.tag)}` : '';
      return `${outcome}${what}${result}${copy ? ` [copy ${copy.direction} ${copy.bytes} bytes]` : ''} (${humanDuration(Number(r.ms))})`;
    }
    case 'session.end':
      return `session ended: ${END_WORDS[String(r.reason)] ?? String(r.reason)} after ${humanDuration(Number(r.ms))}, ${String(r.statements)} statements`;
    case 'directory.change': {
      const m = r.members as { added?: Member[]; removed?: Member[] } | undefined;
      const parts = [`${String(r.resource)} ${String(r.name ?? r.id)} ${String(r.op)}`];
      if (r.active === false) parts.push('deactivated');
      if (r.active === true && r.op !== 'create') parts.push('reactivated');
      if (m?.added?.length) parts.push(`added ${names(m.added)}`);
      if (m?.removed?.length) parts.push(`removed ${names(m.removed)}`);
      if (parts.length === 1) parts.push(String(r.summary));
      return parts.join(': ');
    }
    case 'provisioning':
      return `${String(r.action)} role ${String(r.role)}: ${String(r.outcome)}${r.detail ? ` (${String(r.detail)})` : ''}`;
    case 'checkpoint':
      return `signed checkpoint up to seq ${String(r.upto)} (key ${String(r.keyId)})`;
    default:
      return '';
  }
}
