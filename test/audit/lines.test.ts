// The block reader the audit readers use (audit/read/lines.ts): every line comes back exactly, with
// its number and byte offset, across 4 MiB block boundaries, for a line longer than a block, and a
// last line without its newline is reported as partial.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLines } from '../../audit/read/lines.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

let dir: TempDir;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await dir.cleanup();
});

describe('readLines', () => {
  it('gives back every line of a 10 MB file with a 5 MiB line in it, and the partial tail', async () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `{"n":${i},"pad":"${'é'.repeat((i * 37) % 1500)}"}`);
    lines.splice(1234, 0, `{"big":"${'x'.repeat(5 * 1024 * 1024)}"}`);
    const file = join(dir.path, 'lines.jsonl');
    writeFileSync(file, `${lines.join('\n')}\n{"partial":`);
    const got: { text: string; number: number; offset: number; partial: boolean }[] = [];
    for await (const l of readLines(file)) got.push({ text: l.bytes.toString('utf8'), number: l.number, offset: l.offset, partial: l.partial });
    expect(got).toHaveLength(lines.length + 1);
    expect(got.slice(0, -1).map((l) => l.text)).toEqual(lines);
    expect(got.at(-1)).toMatchObject({ text: '{"partial":', partial: true, number: lines.length + 1 });
    let offset = 0;
    got.slice(0, -1).forEach((l, i) => {
      expect(l.number).toBe(i + 1);
      expect(l.offset).toBe(offset);
      offset += Buffer.byteLength(l.text) + 1;
    });
  });

  it('starts at a byte offset (what --follow resumes from)', async () => {
    const file = join(dir.path, 'from.jsonl');
    writeFileSync(file, 'one\ntwo\nthree\n');
    const got: string[] = [];
    for await (const l of readLines(file, 4)) got.push(l.bytes.toString());
    expect(got).toEqual(['two', 'three']);
  });
});
