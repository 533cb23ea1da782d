// `rolegate audit sessions`: one row per session from its session.start and session.end (the
// statement lines are skipped from their bytes, so this reads a large file quickly).
import { readEvents, type EventFilter } from './events.js';
import type { SourceSeries } from './sources.js';

export interface SessionRow {
  readonly session: string;
  readonly instance: string;
  readonly person: string;
  readonly role: string;
  readonly database: string;
  readonly client: string;
  readonly application: string;
  readonly start: string;
  /** null while the files hold no session.end (still live, or ended in a file not given). */
  readonly end: string | null;
  readonly ms: number | null;
  readonly statements: number | null;
  readonly reason: string | null;
}

/** Sessions that started within the filter, in start order. */
export async function collectSessions(series: readonly SourceSeries[], filter: Omit<EventFilter, 'types'>): Promise<SessionRow[]> {
  const rows = new Map<string, SessionRow>();
  const { since, until, ...rest } = filter;
  for await (const r of readEvents(series, { ...rest, types: new Set(['session.start', 'session.end']) })) {
    const id = r.session as string;
    if (r.type === 'session.start') {
      if ((since !== undefined && r.ts < since) || (until !== undefined && r.ts > until)) continue;
      const c = r.client as { address: string; port: number };
      rows.set(id, {
        session: id,
        instance: r.instance,
        person: (r.person as { userName: string }).userName,
        role: String(r.role),
        database: String(r.database),
        client: `${c.address}:${c.port}`,
        application: String(r.application ?? ''),
        start: r.ts,
        end: null,
        ms: null,
        statements: null,
        reason: null,
      });
    } else {
      const row = rows.get(id);
      if (row !== undefined) rows.set(id, { ...row, end: r.ts, ms: Number(r.ms), statements: Number(r.statements), reason: String(r.reason) });
    }
  }
  return [...rows.values()];
}
