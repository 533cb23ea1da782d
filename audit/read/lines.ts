// Reads an audit file line by line in large blocks, without turning lines into strings until a
// caller wants them: a 1 GB file is split with memchr-speed indexOf on Buffers.
import { open } from 'node:fs/promises';

const BLOCK = 4 * 1024 * 1024;

/** One line: its bytes (a view valid until the next line is requested), 1-based number and byte offset. */
export interface RawLine {
  readonly bytes: Buffer;
  readonly number: number;
  readonly offset: number;
}

/**
 * `file` from byte `from` in blocks of whole lines: `buf[0, end)` holds complete lines (newlines
 * included), one await per 4 MiB, not per line (a 1 GB file has millions of lines). A last line
 * without its newline comes as a final block with `partial` set (a write that was cut off, or one
 * still in progress). A block's bytes are valid until the next block is asked for.
 */
export async function* readBlocks(file: string, from = 0): AsyncGenerator<{ buf: Buffer; end: number; offset: number; partial: boolean }> {
  const fh = await open(file, 'r');
  try {
    let buf = Buffer.allocUnsafe(BLOCK);
    let carry = 0;
    let pos = from;
    for (;;) {
      // A line longer than the buffer: grow it (whole lines are what callers get).
      if (carry === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, carry);
        buf = bigger;
      }
      const { bytesRead } = await fh.read(buf, carry, buf.length - carry, pos);
      if (bytesRead === 0) break;
      const filled = carry + bytesRead;
      const end = buf.lastIndexOf(0x0a, filled - 1) + 1;
      if (end > 0) yield { buf, end, offset: pos - carry, partial: false };
      pos += bytesRead;
      // The bytes after the last newline move to the front (a small copy: less than one line).
      carry = filled - end;
      if (carry > 0) buf.copy(buf, 0, end, filled);
    }
    if (carry > 0) yield { buf, end: carry, offset: pos - carry, partial: true };
  } finally {
    await fh.close();
  }
}

/** The lines of `file` from byte `from`, a block at a time. */
export async function* readLineBlocks(file: string, from = 0, firstNumber = 1): AsyncGenerator<(RawLine & { partial: boolean })[]> {
  let number = firstNumber;
  for await (const b of readBlocks(file, from)) {
    const lines: (RawLine & { partial: boolean })[] = [];
    let start = 0;
    while (start < b.end) {
      const nl = b.partial ? b.end : b.buf.indexOf(0x0a, start);
      lines.push({ bytes: b.buf.subarray(start, nl), number: number++, offset: b.offset + start, partial: b.partial });
      start = nl + 1;
    }
    yield lines;
  }
}

/** The same, a line at a time (for readers that stop early or need each line's place). */
export async function* readLines(file: string, from = 0, firstNumber = 1): AsyncGenerator<RawLine & { partial: boolean }> {
  for await (const block of readLineBlocks(file, from, firstNumber)) yield* block;
}
