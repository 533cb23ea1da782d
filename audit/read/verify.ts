// `rolegate audit verify` (docs/design.md §6): walks each instance's chain across its files and names
// the first line that was edited, deleted, inserted or reordered, with its file and line number;
// with a public key, checks every signed checkpoint and says how much of the chain they cover.
import type { KeyObject } from 'node:crypto';
import { GENESIS, checkLine } from '../chain.js';
import { keyIdOf, verifyCheckpoint } from '../signing.js';
import { readLines } from './lines.js';
import type { SourceSeries } from './sources.js';

export interface VerifyOptions {
  /** Ed25519 public key: checkpoints must verify with it. */
  readonly publicKey?: KeyObject;
  /** The series may start after seq 1 (older files were archived or given separately). */
  readonly partial?: boolean;
}

export interface SeriesReport {
  readonly series: string;
  readonly instance: string | null;
  readonly files: number;
  readonly lines: number;
  readonly firstSeq: number | null;
  readonly lastSeq: number | null;
  readonly head: string | null;
  readonly checkpoints: number;
  /** Lines after the last checkpoint that verified (only with a public key). */
  readonly uncovered: number | null;
  /** The first break, or null when the chain holds. */
  readonly broken: { readonly file: string; readonly line: number; readonly seq: number | null; readonly problem: string } | null;
}

/** Verifies every series; a report per series (`broken` set at the first problem found). */
export async function verifySeries(series: readonly SourceSeries[], opts: VerifyOptions = {}): Promise<SeriesReport[]> {
  const out: SeriesReport[] = [];
  for (const s of series) out.push(await verifyOne(s, opts));
  return out;
}

async function verifyOne(s: SourceSeries, opts: VerifyOptions): Promise<SeriesReport> {
  const keyId = opts.publicKey ? keyIdOf(opts.publicKey) : undefined;
  let instance: string | null = null;
  let lines = 0;
  let firstSeq: number | null = null;
  let lastSeq = 0;
  let lastHash = '';
  let checkpoints = 0;
  let coveredUpTo = 0;
  const report = (broken: SeriesReport['broken']): SeriesReport => ({
    series: s.key,
    instance,
    files: s.files.length,
    lines,
    firstSeq,
    lastSeq: firstSeq === null ? null : lastSeq,
    head: firstSeq === null ? null : lastHash,
    checkpoints,
    uncovered: opts.publicKey ? lastSeq - coveredUpTo : null,
    broken,
  });

  for (const file of s.files) {
    for await (const raw of readLines(file)) {
      const text = raw.bytes.toString('utf8');
      const at = (seq: number | null, problem: string) => report({ file, line: raw.number, seq, problem });
      if (raw.partial) return at(null, 'incomplete last line: a write was cut off (crash or full disk), or the line was cut');
      const c = checkLine(text);
      if (!c.ok) return at(null, c.problem);
      if (firstSeq === null) {
        instance = c.instance;
        if (!opts.partial && (c.seq !== 1 || c.prev !== GENESIS)) {
          return at(c.seq, `the chain starts at seq ${c.seq}: the lines before it are missing (deleted, or in files not given; --partial accepts this)`);
        }
        firstSeq = c.seq;
      } else {
        if (c.instance !== instance) return at(c.seq, `line of instance "${c.instance}" inside the chain of "${instance}"`);
        if (c.seq <= lastSeq) return at(c.seq, `seq goes back from ${lastSeq} to ${c.seq}: a line was inserted or lines were reordered`);
        if (c.seq > lastSeq + 1) {
          const missing = c.seq - lastSeq - 1;
          return at(c.seq, `seq jumps from ${lastSeq} to ${c.seq}: ${missing} line${missing === 1 ? '' : 's'} missing (deleted)`);
        }
        if (c.prev !== lastHash) return at(c.seq, 'prev does not match the line before: that line was edited or this line was inserted');
      }
      if (c.record.type === 'checkpoint' && opts.publicKey) {
        const r = c.record;
        if (r.upto !== lastSeq || r.head !== lastHash) return at(c.seq, 'checkpoint does not name the line before it');
        if (r.keyId !== keyId) return at(c.seq, `checkpoint signed by key ${String(r.keyId)}, not by the key given (${keyId})`);
        if (typeof r.sig !== 'string' || !verifyCheckpoint(opts.publicKey, c.instance, lastSeq, lastHash, r.sig)) {
          return at(c.seq, 'checkpoint signature does not verify');
        }
        checkpoints++;
        coveredUpTo = c.seq;
      } else if (c.record.type === 'checkpoint') {
        checkpoints++;
      }
      lines++;
      lastSeq = c.seq;
      lastHash = c.hash;
    }
  }
  return report(null);
}
