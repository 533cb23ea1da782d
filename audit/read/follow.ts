// `rolegate audit export --follow`: keeps reading as the files grow and across rotation (a series'
// next numbered file, docs/design.md §6), and picks up series that appear in a followed folder, for
// a SIEM shipper. Each round's new lines are put in time order before they are handed on.
import { readLines } from './lines.js';
import { collectSeries } from './sources.js';

export interface FollowOptions {
  readonly pollMs: number;
  readonly signal: AbortSignal;
  /** Lines with an earlier ts are skipped. */
  readonly since?: string;
  /** Called with each round's complete lines, oldest first. */
  onLines(lines: readonly string[]): Promise<void> | void;
}

/** Lines read per series per round, so a large backlog is handed on in bounded steps. */
const ROUND_LINES = 20_000;

const PREFIX = '{"v":1,"ts":"';
function tsOf(line: string): string {
  if (line.startsWith(PREFIX)) return line.slice(PREFIX.length, PREFIX.length + 24);
  try {
    const ts = (JSON.parse(line) as { ts?: unknown }).ts;
    return typeof ts === 'string' ? ts : '';
  } catch {
    return '';
  }
}

/** Follows the files and folders in `args` until the signal aborts. */
export async function follow(args: readonly string[], o: FollowOptions): Promise<void> {
  const at = new Map<string, { file: string; offset: number }>();
  while (!o.signal.aborted) {
    const series = await collectSeries(args).catch(() => []);
    const round: { ts: string; line: string }[] = [];
    let backlog = false;
    for (const s of series) {
      let st = at.get(s.key);
      if (st === undefined) {
        if (s.files[0] === undefined) continue;
        st = { file: s.files[0], offset: 0 };
        at.set(s.key, st);
      }
      let taken = 0;
      for (;;) {
        let partial = false;
        for await (const raw of readLines(st.file, st.offset)) {
          if (raw.partial) {
            partial = true;
            break;
          }
          st.offset = raw.offset + raw.bytes.length + 1;
          const line = raw.bytes.toString('utf8');
          const ts = tsOf(line);
          if (o.since === undefined || ts >= o.since) round.push({ ts, line });
          if (++taken >= ROUND_LINES) break;
        }
        if (taken >= ROUND_LINES) {
          backlog = true;
          break;
        }
        // The writer starts the next file only when it is done with this one: move on once it exists.
        const next = s.files[s.files.indexOf(st.file) + 1];
        if (partial || next === undefined) break;
        st.file = next;
        st.offset = 0;
      }
    }
    if (round.length > 0) {
      round.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
      await o.onLines(round.map((r) => r.line));
    }
    if (!backlog) await sleep(o.pollMs, o.signal);
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
