// Reads audit events from several series (instances) merged by time, with the filters of `rolegate
// audit search` (docs/design.md §3). A person or role selects sessions by their session.start, and
// then those sessions' statements: statement lines of other sessions are skipped from their raw bytes
// without parsing, which is what keeps a search of a 1 GB file within seconds.
import type { SourceSeries } from './sources.js';
import { readBlocks } from './lines.js';

/** One parsed audit line. */
export type AuditRecord = Record<string, unknown> & { readonly type: string; readonly ts: string; readonly instance: string; readonly seq: number };

/** The line as it is in the file, on every record readEvents yields (export --format jsonl). */
export const RAW_LINE: unique symbol = Symbol('raw audit line');

/** The exact text of a record's line. */
export function rawLine(r: AuditRecord): string {
  return (r as { [RAW_LINE]?: string })[RAW_LINE] ?? JSON.stringify(r);
}

export interface EventFilter {
  readonly person?: string;
  readonly role?: string;
  /** Inclusive bounds, as audit `ts` strings. */
  readonly since?: string;
  readonly until?: string;
  readonly session?: string;
  readonly types?: ReadonlySet<string>;
}

/** What the filters learn while reading: the sessions and SCIM ids of the person asked about. */
class Scope {
  readonly sessions = new Set<string>();
  readonly personIds = new Set<string>();
  readonly person: string | undefined;
  constructor(
    readonly filter: EventFilter,
    readonly sessionPeople: Map<string, string> | undefined,
  ) {
    this.person = filter.person?.toLowerCase();
  }

  get bySession(): boolean {
    return this.person !== undefined || this.filter.role !== undefined || this.filter.session !== undefined;
  }

  wantsSession(id: string): boolean {
    if (this.filter.session !== undefined && id !== this.filter.session) return false;
    if (this.person === undefined && this.filter.role === undefined) return true;
    return this.sessions.has(id);
  }

  isPerson(name: unknown, id?: unknown): boolean {
    if (this.person === undefined) return false;
    return (typeof name === 'string' && name.toLowerCase() === this.person) || (typeof id === 'string' && this.personIds.has(id));
  }

  /** Learns from a line before it is filtered (a session.start outside --since still names a session). */
  learn(r: AuditRecord): void {
    if (r.type === 'session.start') {
      const person = r.person as { userName?: string; id?: string } | undefined;
      if (this.sessionPeople !== undefined && typeof r.session === 'string' && typeof person?.userName === 'string') this.sessionPeople.set(r.session, person.userName);
      const isPerson = this.person === undefined || person?.userName?.toLowerCase() === this.person;
      const isRole = this.filter.role === undefined || r.role === this.filter.role;
      if (isPerson && isRole && typeof r.session === 'string') this.sessions.add(r.session);
      if (this.person !== undefined && isPerson && typeof person?.id === 'string') this.personIds.add(person.id);
    } else if (r.type === 'directory.change' && r.resource === 'User' && this.person !== undefined && typeof r.name === 'string' && r.name.toLowerCase() === this.person) {
      this.personIds.add(r.id as string);
    }
  }

  matches(r: AuditRecord): boolean {
    const f = this.filter;
    if (f.types !== undefined && !f.types.has(r.type)) return false;
    if (f.since !== undefined && r.ts < f.since) return false;
    if (f.until !== undefined && r.ts > f.until) return false;
    switch (r.type) {
      case 'session.start':
      case 'session.end':
      case 'statement':
        return typeof r.session === 'string' && this.wantsSession(r.session);
      case 'session.denied':
        if (f.session !== undefined && r.session !== f.session) return false;
        if (f.role !== undefined) return false;
        return this.person === undefined || this.isPerson(r.requestedUser);
      case 'directory.change': {
        if (f.session !== undefined || f.role !== undefined) return false;
        if (this.person === undefined) return true;
        if (r.resource === 'User') return this.isPerson(r.name, r.id);
        const m = r.members as { added?: { id: string; userName?: string }[]; removed?: { id: string; userName?: string }[] } | undefined;
        return [...(m?.added ?? []), ...(m?.removed ?? [])].some((x) => this.isPerson(x.userName, x.id));
      }
      case 'provisioning':
        if (f.session !== undefined) return false;
        return (this.person === undefined || this.isPerson((r.person as { userName?: string }).userName, (r.person as { id?: string }).id)) && (f.role === undefined || r.role === f.role);
      default:
        return f.session === undefined && this.person === undefined && f.role === undefined;
    }
  }
}

// Lines written by rolegate start with {"v":1,"ts":"<24 characters>","type":"<type>"; the readers
// use that to skip lines from their bytes, and parse everything else in full.
const PREFIX = Buffer.from('{"v":1,"ts":"');
const TYPE_AT = PREFIX.length + 24;
const STATEMENT_TYPE = Buffer.from('","type":"statement"');
const SESSION_KEY = Buffer.from('"session":"');
const UUID_LENGTH = 36;

/** True when the line at buf[start, end) is a statement, from its bytes. */
function isStatementLine(buf: Buffer, start: number, end: number): boolean {
  return (
    end - start > TYPE_AT + STATEMENT_TYPE.length &&
    buf.compare(STATEMENT_TYPE, 0, STATEMENT_TYPE.length, start + TYPE_AT, start + TYPE_AT + STATEMENT_TYPE.length) === 0 &&
    buf.compare(PREFIX, 0, PREFIX.length, start, start + PREFIX.length) === 0
  );
}

/** The session id of the statement line at buf[start, end), or undefined. */
function statementSession(buf: Buffer, start: number, end: number): string | undefined {
  const at = buf.indexOf(SESSION_KEY, start + TYPE_AT);
  if (at < 0 || at + SESSION_KEY.length + UUID_LENGTH > end) return undefined;
  const from = at + SESSION_KEY.length;
  const to = buf.indexOf(0x22, from);
  return to < 0 || to > end ? undefined : buf.toString('latin1', from, to);
}

/** Every matching event of one series, in file order, a block of the file at a time. */
async function* seriesEvents(s: SourceSeries, scope: Scope): AsyncGenerator<AuditRecord[]> {
  const skipStatements = scope.filter.types !== undefined && !scope.filter.types.has('statement');
  for (const file of s.files) {
    for await (const block of readBlocks(file)) {
      if (block.partial) continue;
      const { buf } = block;
      const out: AuditRecord[] = [];
      let start = 0;
      while (start < block.end) {
        const end = buf.indexOf(0x0a, start);
        const lineStart = start;
        start = end + 1;
        // Statement lines of sessions nobody asked about are skipped without a string or a parse.
        if (isStatementLine(buf, lineStart, end)) {
          if (skipStatements) continue;
          if (scope.bySession) {
            const id = statementSession(buf, lineStart, end);
            if (id !== undefined && !scope.wantsSession(id)) continue;
          }
        }
        const text = buf.toString('utf8', lineStart, end);
        let r: AuditRecord;
        try {
          r = JSON.parse(text) as AuditRecord;
        } catch {
          continue; // `audit verify` reports lines that are not JSON
        }
        if (r === null || typeof r !== 'object' || typeof r.ts !== 'string' || typeof r.type !== 'string') continue;
        (r as { [RAW_LINE]?: string })[RAW_LINE] = text;
        scope.learn(r);
        if (scope.matches(r)) out.push(r);
      }
      if (out.length > 0) yield out;
    }
  }
}

/** One series' matching events one at a time, from its blocks. */
async function* flatten(blocks: AsyncGenerator<AuditRecord[]>): AsyncGenerator<AuditRecord> {
  for await (const b of blocks) yield* b;
}

/** Events of all series that match `filter`, oldest first (ties: instance, then seq). */
export async function* readEvents(
  series: readonly SourceSeries[],
  filter: EventFilter = {},
  opts: { /** Filled with the person of every session.start read (also those filtered out). */ sessionPeople?: Map<string, string> } = {},
): AsyncGenerator<AuditRecord> {
  const scope = new Scope(filter, opts.sessionPeople);
  const its = series.map((s) => flatten(seriesEvents(s, scope)));
  const heads: (AuditRecord | undefined)[] = await Promise.all(its.map(async (it) => (await it.next()).value ?? undefined));
  for (;;) {
    let best = -1;
    for (let i = 0; i < heads.length; i++) {
      const h = heads[i];
      if (h === undefined) continue;
      const b = best < 0 ? undefined : heads[best];
      if (b === undefined || before(h, b)) best = i;
    }
    if (best < 0) return;
    yield heads[best] as AuditRecord;
    heads[best] = (await (its[best] as AsyncGenerator<AuditRecord>).next()).value ?? undefined;
  }
}

function before(a: AuditRecord, b: AuditRecord): boolean {
  if (a.ts !== b.ts) return a.ts < b.ts;
  if (a.instance !== b.instance) return a.instance < b.instance;
  return a.seq < b.seq;
}
