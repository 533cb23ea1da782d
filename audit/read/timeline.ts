// `rolegate audit timeline --person P`: the person's story as an auditor asks for it: directory
// changes (created, added to a group, deactivated, by which SCIM token), provisioning, logins and
// refusals, each session's statements in one line, and how each session ended.
import { END_WORDS } from './describe.js';
import { readEvents, type AuditRecord, type EventFilter } from './events.js';
import type { SourceSeries } from './sources.js';
import { humanDuration } from './table.js';

export interface TimelineEntry {
  readonly ts: string;
  /** For a session's statements: the last one. */
  readonly until?: string;
  readonly what: string;
  readonly session?: string;
}

type Member = { id: string; userName?: string };

interface Open {
  first?: string;
  last?: string;
  count: number;
  failed: number;
}

/** The story of `person`, oldest first. */
export async function personTimeline(series: readonly SourceSeries[], person: string, window: Pick<EventFilter, 'since' | 'until'> = {}): Promise<TimelineEntry[]> {
  const out: TimelineEntry[] = [];
  const open = new Map<string, Open>();
  const ids = new Set<string>();
  const me = person.toLowerCase();
  const isMe = (m: Member): boolean => m.userName?.toLowerCase() === me || ids.has(m.id);
  const flush = (session: string): void => {
    const o = open.get(session);
    open.delete(session);
    if (o?.first === undefined || o.last === undefined) return;
    const failed = o.failed > 0 ? ` (${o.failed} failed)` : '';
    out.push({ ts: o.first, until: o.last, what: `${o.count} statement${o.count === 1 ? '' : 's'}${failed}`, session });
  };
  for await (const r of readEvents(series, { person, ...window })) {
    const by = (rec: AuditRecord): string => ` (${String(rec.actor)})`;
    switch (r.type) {
      case 'directory.change': {
        if (r.resource === 'User') {
          ids.add(r.id as string);
          if (r.op === 'create') out.push({ ts: r.ts, what: `created in the directory${r.active === false ? ', inactive' : ''}${by(r)}` });
          else if (r.op === 'delete') out.push({ ts: r.ts, what: `deleted from the directory${by(r)}` });
          else if (r.active === false) out.push({ ts: r.ts, what: `deactivated${by(r)}` });
          else if (r.active === true) out.push({ ts: r.ts, what: `reactivated${by(r)}` });
          else out.push({ ts: r.ts, what: `directory entry changed: ${String(r.summary)}${by(r)}` });
        } else {
          const m = r.members as { added?: Member[]; removed?: Member[] } | undefined;
          const group = String(r.name ?? r.id);
          if (m?.added?.some(isMe)) out.push({ ts: r.ts, what: `added to ${group}${by(r)}` });
          if (m?.removed?.some(isMe)) out.push({ ts: r.ts, what: `removed from ${group}${by(r)}` });
        }
        break;
      }
      case 'provisioning':
        out.push({ ts: r.ts, what: `provisioning: ${String(r.action)} role ${String(r.role)}: ${String(r.outcome)}${r.detail ? ` (${String(r.detail)})` : ''}` });
        break;
      case 'session.denied':
        out.push({ ts: r.ts, what: `login refused: ${String(r.reason)} (${String(r.sqlstate)}) from ${(r.client as { address: string }).address}`, session: r.session as string });
        break;
      case 'session.start': {
        const person = r.person as { id: string };
        ids.add(person.id);
        open.set(r.session as string, { count: 0, failed: 0 });
        const app = r.application ? ` (${String(r.application)})` : '';
        out.push({ ts: r.ts, what: `login as ${String(r.role)} to ${String(r.database)} from ${(r.client as { address: string }).address}${app}`, session: r.session as string });
        break;
      }
      case 'statement': {
        const o = open.get(r.session as string);
        if (o === undefined) break;
        o.first ??= r.ts;
        o.last = r.ts;
        o.count++;
        if (r.outcome === 'error') o.failed++;
        break;
      }
      case 'session.end': {
        flush(r.session as string);
        out.push({ ts: r.ts, what: `session ended: ${END_WORDS[String(r.reason)] ?? String(r.reason)} (${humanDuration(Number(r.ms))})`, session: r.session as string });
        break;
      }
      default:
        break;
    }
  }
  for (const session of [...open.keys()]) flush(session);
  return out.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
}

/** `2026-11-23 09:05-09:47  14 statements` style lines. */
export function renderTimeline(entries: readonly TimelineEntry[]): string {
  const lines = entries.map((e) => {
    const day = e.ts.slice(0, 10);
    const at = e.ts.slice(11, 16);
    const span = e.until !== undefined && e.until.slice(11, 16) !== at ? `${at}-${e.until.slice(11, 16)}` : at;
    return `${day} ${span.padEnd(11)}  ${e.what}`;
  });
  return lines.length === 0 ? '' : `${lines.join('\n')}\n`;
}
