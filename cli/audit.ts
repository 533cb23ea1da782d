// `rolegate audit verify|search|sessions|timeline|export` (docs/design.md §3, §6): the security team's
// readers over audit files and folders of any number of instances, merged by time. Human output is
// a table sized to the terminal; `--json` prints JSON lines for scripts.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { AUDIT_EVENT_TYPES } from '../audit/events.js';
import { describeEvent, whoOf } from '../audit/read/describe.js';
import { readEvents, rawLine, type AuditRecord, type EventFilter } from '../audit/read/events.js';
import { follow } from '../audit/read/follow.js';
import { OcsfContext, toOcsf } from '../audit/read/ocsf.js';
import { collectSessions } from '../audit/read/sessions.js';
import { collectSeries } from '../audit/read/sources.js';
import { humanDuration, renderTable, shortTime } from '../audit/read/table.js';
import { parseTimeArg } from '../audit/read/time.js';
import { personTimeline, renderTimeline } from '../audit/read/timeline.js';
import { verifySeries } from '../audit/read/verify.js';
import { publicKeyFromPem } from '../audit/signing.js';
import { CodedError } from '../lib/coded-error.js';
import { EXIT, type AuditCommand, type AuditFilters } from './args.js';
import { fail } from './output.js';

/** Errors that are the caller's to fix: a missing file, a bad time, a key that is not Ed25519. */
const USAGE_CODES = new Set(['audit_no_such_file', 'audit_bad_time', 'audit_public_key', 'audit_bad_type']);

export async function runAudit(cmd: AuditCommand): Promise<void> {
  // A reader piped into `head` must stop quietly when the pipe closes.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(EXIT.ok);
  });
  try {
    switch (cmd.verb) {
      case 'verify':
        return await verify(cmd);
      case 'search':
        return await search(cmd);
      case 'sessions':
        return await sessions(cmd);
      case 'timeline':
        return await timeline(cmd);
      case 'export':
        return await exportEvents(cmd);
    }
  } catch (err) {
    if (err instanceof CodedError && USAGE_CODES.has(err.code)) return fail(EXIT.usage, [`audit ${cmd.verb}: ${err.message}`]);
    throw err;
  }
}

/** Writes to stdout, waiting for it to drain (a large export into a slow pipe). */
async function out(text: string): Promise<void> {
  if (!process.stdout.write(text)) await new Promise<void>((resolve) => process.stdout.once('drain', resolve));
}

function width(): number | undefined {
  return process.stdout.isTTY ? process.stdout.columns : undefined;
}

function filterOf(f: AuditFilters, now: number): EventFilter {
  return {
    ...(f.person !== undefined ? { person: f.person } : {}),
    ...(f.role !== undefined ? { role: f.role } : {}),
    ...(f.session !== undefined ? { session: f.session } : {}),
    ...(f.since !== undefined ? { since: parseTimeArg(f.since, now) } : {}),
    ...(f.until !== undefined ? { until: parseTimeArg(f.until, now) } : {}),
  };
}

async function verify(cmd: Extract<AuditCommand, { verb: 'verify' }>): Promise<void> {
  const publicKey = cmd.publicKey === undefined ? undefined : publicKeyFromPem(await readFile(cmd.publicKey).catch(() => {
    throw new CodedError('audit_public_key', `${cmd.publicKey}: cannot read the public key file`);
  }));
  const series = await collectSeries(cmd.files);
  const reports = await verifySeries(series, { ...(publicKey ? { publicKey } : {}), partial: cmd.partial });
  let ok = reports.length > 0;
  for (const r of reports) {
    if (r.broken !== null || r.lines === 0) ok = false;
    if (cmd.json) {
      await out(`${JSON.stringify(r)}\n`);
      continue;
    }
    if (r.broken !== null) {
      const seq = r.broken.seq === null ? '' : ` (seq ${r.broken.seq})`;
      await out(`FAIL ${r.series}: ${r.broken.file} line ${r.broken.line}${seq}: ${r.broken.problem}\n`);
      continue;
    }
    if (r.lines === 0) {
      await out(`FAIL ${r.series}: no audit lines\n`);
      continue;
    }
    const signed = r.uncovered === null
      ? `${r.checkpoints} checkpoint${r.checkpoints === 1 ? '' : 's'} (not checked: no --public-key)`
      : `${r.checkpoints} signed checkpoint${r.checkpoints === 1 ? '' : 's'} verified, ${r.uncovered} line${r.uncovered === 1 ? '' : 's'} after the last one`;
    await out(`OK   ${r.series}: instance ${r.instance ?? '?'}, ${r.files} file${r.files === 1 ? '' : 's'}, ${r.lines} lines (seq ${r.firstSeq}-${r.lastSeq}), head ${r.head}; ${signed}\n`);
  }
  if (reports.length === 0 && !cmd.json) await out('FAIL no audit files found\n');
  if (!ok) process.exitCode = EXIT.failure;
}

async function search(cmd: Extract<AuditCommand, { verb: 'search' }>): Promise<void> {
  for (const t of cmd.types) {
    if (!(AUDIT_EVENT_TYPES as readonly string[]).includes(t)) throw new CodedError('audit_bad_type', `unknown event type "${t}" (one of ${AUDIT_EVENT_TYPES.join(', ')})`);
  }
  const series = await collectSeries(cmd.files);
  const filter: EventFilter = { ...filterOf(cmd, Date.now()), ...(cmd.types.length > 0 ? { types: new Set(cmd.types) } : {}) };
  const people = new Map<string, string>();
  const table = cmd.json ? undefined : new TableStream(['TIME (UTC)', 'TYPE', 'WHO', 'SESSION', 'WHAT'], width());
  for await (const r of readEvents(series, filter, { sessionPeople: people })) {
    if (table === undefined) {
      await out(`${rawLine(r)}\n`);
      continue;
    }
    await table.row([shortTime(r.ts), r.type, whoOf(r, (id) => people.get(id)), typeof r.session === 'string' ? r.session.slice(0, 8) : '', describeEvent(r)]);
  }
  if (table !== undefined) await table.end('(no matching events)');
}

async function sessions(cmd: Extract<AuditCommand, { verb: 'sessions' }>): Promise<void> {
  const rows = await collectSessions(await collectSeries(cmd.files), filterOf(cmd, Date.now()));
  if (cmd.json) {
    for (const r of rows) await out(`${JSON.stringify(r)}\n`);
    return;
  }
  if (rows.length === 0) return out('(no matching sessions)\n');
  const cells = rows.map((r) => [
    r.session.slice(0, 8), r.person, r.role, r.database, r.client, shortTime(r.start),
    r.ms === null ? '(no end)' : humanDuration(r.ms), r.statements === null ? '' : String(r.statements), r.reason ?? '',
  ]);
  await out(renderTable(['SESSION', 'PERSON', 'ROLE', 'DATABASE', 'CLIENT', 'START (UTC)', 'DURATION', 'STATEMENTS', 'END'], cells, width()));
}

async function timeline(cmd: Extract<AuditCommand, { verb: 'timeline' }>): Promise<void> {
  const window = filterOf(cmd, Date.now());
  const entries = await personTimeline(await collectSeries(cmd.files), cmd.person, window);
  if (cmd.json) {
    for (const e of entries) await out(`${JSON.stringify(e)}\n`);
    return;
  }
  if (entries.length === 0) return out(`(nothing about ${cmd.person} in these files)\n`);
  await out(`Timeline of ${cmd.person} (UTC)\n${renderTimeline(entries)}`);
}

async function exportEvents(cmd: Extract<AuditCommand, { verb: 'export' }>): Promise<void> {
  const since = cmd.since === undefined ? undefined : parseTimeArg(cmd.since, Date.now());
  const ctx = new OcsfContext(packageVersion());
  const emit = async (r: AuditRecord): Promise<void> => {
    if (cmd.format === 'jsonl') return out(`${rawLine(r)}\n`);
    for (const e of toOcsf(r, ctx)) await out(`${JSON.stringify(e)}\n`);
  };
  if (!cmd.follow) {
    for await (const r of readEvents(await collectSeries(cmd.files), since === undefined ? {} : { since })) await emit(r);
    return;
  }
  await collectSeries(cmd.files); // a missing file is a usage error before following starts
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  await follow(cmd.files, {
    pollMs: 250,
    signal: stop.signal,
    ...(since !== undefined ? { since } : {}),
    onLines: async (lines) => {
      for (const line of lines) {
        if (cmd.format === 'jsonl') {
          await out(`${line}\n`);
          continue;
        }
        try {
          await emit(JSON.parse(line) as AuditRecord);
        } catch {
          // a line that is not JSON is `audit verify`'s to report
        }
      }
    },
  });
}

/**
 * A table printed as it goes: the first rows set the column widths (so a search over a large file
 * starts printing at once and holds little), later cells are cut to them.
 */
class TableStream {
  readonly #headers: readonly string[];
  readonly #width: number | undefined;
  #buffered: string[][] | undefined = [];
  #widths: number[] = [];

  constructor(headers: readonly string[], width: number | undefined) {
    this.#headers = headers;
    this.#width = width;
  }

  async row(cells: string[]): Promise<void> {
    if (this.#buffered !== undefined) {
      this.#buffered.push(cells);
      if (this.#buffered.length >= 200) await this.#flush();
      return;
    }
    const line = cells.map((c, i) => {
      const w = this.#widths[i] as number;
      const fitted = c.length > w ? `${c.slice(0, Math.max(0, w - 1))}…` : c.padEnd(w);
      return i === cells.length - 1 ? fitted.trimEnd() : fitted;
    });
    await out(`${line.join('  ')}\n`);
  }

  async end(empty: string): Promise<void> {
    if (this.#buffered !== undefined && this.#buffered.length === 0) return out(`${empty}\n`);
    if (this.#buffered !== undefined) await this.#flush();
  }

  async #flush(): Promise<void> {
    const rows = this.#buffered ?? [];
    this.#buffered = undefined;
    const text = renderTable(this.#headers, rows, this.#width);
    // The widths the table settled on, read back from its dashes line.
    this.#widths = (text.split('\n')[1] ?? '').split('  ').map((d) => d.length);
    await out(text);
  }
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
