// Which files the `rolegate audit` readers read, and in what order: the FILE arguments (files, or
// folders meaning every numbered audit file in them) grouped into series, each series in file order
// (docs/design.md §6: one series per instance, numbered files, rotation starts the next number).
import { readdir, stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { CodedError } from '../../lib/coded-error.js';
import { parseSeriesPath } from '../files.js';

/**
 * One instance's files in order; `key` is the file name without the number (or the path, for other
 * names). Files of one series may sit in several folders (an archive and the live folder).
 */
export interface SourceSeries {
  readonly key: string;
  readonly files: readonly string[];
}

/** Expands the arguments into series. Throws `audit_no_such_file` for an argument that does not exist. */
export async function collectSeries(args: readonly string[]): Promise<SourceSeries[]> {
  const files = new Set<string>();
  for (const arg of args) {
    const path = resolve(arg);
    const st = await stat(path).catch(() => undefined);
    if (st === undefined) throw new CodedError('audit_no_such_file', `${arg}: no such file or folder`);
    if (st.isDirectory()) {
      for (const name of await readdir(path)) if (parseSeriesPath(name) !== undefined) files.add(join(path, name));
    } else {
      files.add(path);
    }
  }
  const bySeries = new Map<string, { n: number; file: string }[]>();
  for (const file of files) {
    const parsed = parseSeriesPath(file);
    const key = parsed === undefined ? file : basename(parsed.series);
    const list = bySeries.get(key) ?? [];
    list.push({ n: parsed?.n ?? 0, file });
    bySeries.set(key, list);
  }
  return [...bySeries.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, list]) => ({ key, files: list.sort((a, b) => a.n - b.n || (a.file < b.file ? -1 : 1)).map((f) => f.file) }));
}

/** The folders among the arguments (for --follow, which also picks up series that start later). */
export async function folderArgs(args: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const arg of args) if ((await stat(arg).catch(() => undefined))?.isDirectory()) out.push(resolve(arg));
  return out;
}
