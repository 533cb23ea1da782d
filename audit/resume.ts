// Where a restarted writer picks up its chain: the last complete line of the newest non-empty file
// of its series, read backwards in blocks (a line may be long: a group change names its members).
import { open } from 'node:fs/promises';
import { CodedError } from '../lib/coded-error.js';
import { EMPTY_HEAD, checkLine, type ChainHead } from './chain.js';
import { seriesFile, seriesNumbers, type Series } from './files.js';

const BLOCK = 64 * 1024;
/** The longest last line looked for; a longer one is reported, not read into memory. */
const MAX_LINE = 16 * 1024 * 1024;

export interface ResumePoint {
  readonly head: ChainHead;
  /** The newest file's number and size (0 and 0 when the series has no file yet). */
  readonly n: number;
  readonly size: number;
  /** The newest file ends in a partial line (a write cut off by a crash): do not append to it. */
  readonly torn: boolean;
}

/** Reads the series' head. Throws `audit_unreadable` when the last line is not a sealed audit line. */
export async function resumePoint(series: Series): Promise<ResumePoint> {
  const numbers = await seriesNumbers(series);
  const newest = numbers.at(-1);
  if (newest === undefined) return { head: EMPTY_HEAD, n: 0, size: 0, torn: false };
  let newestSize = -1;
  let torn = false;
  for (let i = numbers.length - 1; i >= 0; i--) {
    const file = seriesFile(series, numbers[i] as number);
    const tail = await lastLine(file);
    if (newestSize < 0) {
      newestSize = tail.size;
      torn = tail.torn;
    }
    if (tail.line === undefined) continue;
    const checked = checkLine(tail.line);
    if (!checked.ok) {
      throw new CodedError('audit_unreadable', `the last line of ${file} is not a sealed audit line (${checked.problem}); run "rolegate audit verify"`);
    }
    return { head: { seq: checked.seq, hash: checked.hash }, n: newest, size: newestSize, torn };
  }
  return { head: EMPTY_HEAD, n: newest, size: newestSize, torn };
}

/** The last complete line of `file` (without its newline), its size, and whether bytes follow it. */
async function lastLine(file: string): Promise<{ line: string | undefined; size: number; torn: boolean }> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    if (size === 0) return { line: undefined, size, torn: false };
    const last = Buffer.alloc(1);
    await fh.read(last, 0, 1, size - 1);
    const torn = last[0] !== 0x0a;
    // The end of the last complete line: the last newline in the file.
    let end = -1;
    let pos = size;
    const chunks: Buffer[] = [];
    while (pos > 0 && size - pos <= MAX_LINE) {
      const from = Math.max(0, pos - BLOCK);
      const buf = Buffer.alloc(pos - from);
      await fh.read(buf, 0, buf.length, from);
      chunks.unshift(buf);
      pos = from;
      const joined = Buffer.concat(chunks);
      if (end < 0) {
        const nl = joined.lastIndexOf(0x0a);
        if (nl < 0) continue;
        end = pos + nl;
      }
      const rel = end - pos;
      // (lastIndexOf with a negative offset would count from the end.)
      const start = rel === 0 ? -1 : joined.lastIndexOf(0x0a, rel - 1);
      if (start >= 0 || pos === 0) return { line: joined.toString('utf8', start + 1, rel), size, torn };
    }
    return { line: undefined, size, torn };
  } finally {
    await fh.close();
  }
}
