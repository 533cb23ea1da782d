// Every design reference a comment makes resolves inside the repository (docs/README.md): a
// `docs/design.md §N` or `§2 step N` to a heading of docs/design.md, a SCIM behaviour `D<n>` to its
// heading in docs/scim.md, a `docs/style.md N` to a rule of docs/style.md; and no comment cites the
// contract documents that live outside the repository.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');
const read = (f: string): string => readFileSync(join(REPO, f), 'utf8');

function files(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts'], { cwd: REPO, encoding: 'utf8' });
  return out.split('\n').filter((f) => f !== '' && f !== 'test/architecture/citations.test.ts');
}

/** The comment text of a TypeScript file: `//` tails and block-comment lines. */
function comments(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t.startsWith('*') || t.startsWith('/*')) out.push(t);
    else {
      const i = line.indexOf('// ');
      if (i >= 0) out.push(line.slice(i));
    }
  }
  return out;
}

const design = read('docs/design.md');
const scim = read('docs/scim.md');
const style = read('docs/style.md');
const designSections = new Set([...design.matchAll(/^#{2,4} (§\d+(?: step \d+)?)/gm)].map((m) => m[1]));
const scimBehaviours = new Set([...scim.matchAll(/^### (D\d+)\b/gm)].map((m) => m[1]));
const styleRules = new Set([...style.matchAll(/^(\d+)\. \*\*/gm)].map((m) => m[1]));

describe('citations in comments resolve inside the repository', () => {
  const cited: { file: string; what: string }[] = [];
  for (const file of files()) for (const c of comments(read(file))) cited.push({ file, what: c });

  it('reads the docs it checks against', () => {
    expect(designSections.size).toBeGreaterThanOrEqual(17);
    expect(scimBehaviours.size).toBe(32);
    expect(styleRules.size).toBe(10);
  });

  it('docs/design.md sections and steps exist', () => {
    const missing: string[] = [];
    for (const { file, what } of cited) {
      for (const m of what.matchAll(/docs\/design\.md (§\d+)(?: steps? (\d+)(?:(?:-| and )(\d+))?)?/g)) {
        const refs = m[2] === undefined ? [m[1]!] : [m[2], m[3]].filter((x) => x !== undefined).map((n) => `${m[1]} step ${n}`);
        for (const r of refs) if (!designSections.has(r)) missing.push(`${file}: ${r}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('every SCIM behaviour D<n> exists in docs/scim.md', () => {
    const missing: string[] = [];
    let seen = 0;
    for (const { file, what } of cited) {
      // Only where a SCIM behaviour is meant: a D-number standing alone (not inside hex or a regex).
      for (const m of what.matchAll(/(?<![\w\\])D(\d{1,2})\b(?![\w-])/g)) {
        seen++;
        if (!scimBehaviours.has(`D${m[1]}`)) missing.push(`${file}: D${m[1]}`);
      }
    }
    // The SCIM code cites its behaviours about two hundred times; far fewer means the scan broke.
    expect(seen).toBeGreaterThan(100);
    expect(missing).toEqual([]);
  });

  it('docs/style.md rules exist', () => {
    const missing: string[] = [];
    for (const { file, what } of cited) {
      for (const m of what.matchAll(/docs\/style\.md (\d+)/g)) if (!styleRules.has(m[1]!)) missing.push(`${file}: ${m[1]}`);
    }
    expect(missing).toEqual([]);
  });

  it('no comment cites PRODUCT.md, SCIM.md or STYLE.md (they are not in the repository)', () => {
    const outside = cited.filter(({ what }) => /(?<!docs\/)(?:PRODUCT|SCIM|STYLE)(?:\.md)?\s*§|(?<![\w/])(?:PRODUCT|SCIM|STYLE)\.md/.test(what));
    expect(outside.map(({ file, what }) => `${file}: ${what}`)).toEqual([]);
  });
});
