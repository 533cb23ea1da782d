// Where audit lines live on disk (docs/design.md §6): `audit.file` names a base such as
// audit/rolegate.jsonl; each instance writes its own numbered series next to it,
// audit/rolegate.<instance>.000001.jsonl, .000002.jsonl, ... Files are never renamed or reopened
// for rewriting: rotation starts the next number, so a reader following the newest file only ever
// has to look for the one after it.
import { readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** The number has at least this many digits, so names sort in order up to a million files. */
const DIGITS = 6;

/** An instance name as it may appear in a file name: anything else becomes `_`. */
export function fileSafeInstance(instance: string): string {
  const safe = instance.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  return safe === '' ? '_' : safe.slice(0, 128);
}

/** One instance's series of files next to the configured base path. */
export interface Series {
  readonly dir: string;
  /** `rolegate` for audit/rolegate.jsonl. */
  readonly stem: string;
  /** The file-safe instance name. */
  readonly instance: string;
}

export function seriesOf(base: string, instance: string): Series {
  const name = basename(base);
  const stem = name.endsWith('.jsonl') ? name.slice(0, -'.jsonl'.length) : name;
  return { dir: dirname(base), stem, instance: fileSafeInstance(instance) };
}

export function seriesFile(s: Series, n: number): string {
  return join(s.dir, `${s.stem}.${s.instance}.${String(n).padStart(DIGITS, '0')}.jsonl`);
}

/** The lock that keeps a second process with the same instance name off the series. */
export function seriesLock(s: Series): string {
  return join(s.dir, `${s.stem}.${s.instance}.lock`);
}

/**
 * A numbered audit file split into its series (the path without the number, e.g.
 * audit/rolegate.gw-1) and its number; undefined for any other name.
 */
export function parseSeriesPath(path: string): { series: string; n: number } | undefined {
  const m = /^(.+)\.(\d{6,})\.jsonl$/.exec(path);
  if (m === null) return undefined;
  return { series: m[1] as string, n: Number(m[2]) };
}

/** The numbers of a series' existing files, ascending. */
export async function seriesNumbers(s: Series): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(s.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const prefix = `${s.stem}.${s.instance}.`;
  const out: number[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d{6,})\.jsonl$/.exec(name.slice(prefix.length));
    if (m !== null) out.push(Number(m[1]));
  }
  return out.sort((a, b) => a - b);
}
