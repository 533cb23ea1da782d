// The layout stays true (README "Architecture"): every relative import in the source crosses only
// the arrows the layer table allows, nothing imports cli/, proxy/ never reaches scim/, provision/, admin/,
// server/ or demo/, and no module imports itself back through a circle.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** Folder -> the folders its files may import (besides their own). proxy/* rooms are listed apart. */
export const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  lib: [],
  audit: ['lib'],
  'proxy/wire': ['lib'],
  'proxy/tls': ['lib', 'proxy/wire'],
  'proxy/auth': ['lib', 'proxy/wire'],
  'proxy/authz': ['lib'],
  'proxy/relay': ['lib', 'proxy/wire'],
  'proxy/upstream': ['lib', 'proxy/wire'],
  'proxy/session': ['lib', 'audit', 'proxy/wire', 'proxy/tls', 'proxy/auth', 'proxy/authz', 'proxy/relay', 'proxy/upstream'],
  proxy: ['lib', 'audit', 'proxy/wire', 'proxy/tls', 'proxy/auth', 'proxy/authz', 'proxy/relay', 'proxy/upstream', 'proxy/session'],
  scim: ['lib', 'audit'],
  provision: ['lib', 'audit'],
  admin: ['lib'],
  cluster: ['lib'],
  server: ['lib', 'audit', 'proxy', 'proxy/wire', 'proxy/tls', 'proxy/auth', 'proxy/authz', 'proxy/relay', 'proxy/upstream', 'proxy/session', 'scim', 'provision', 'admin', 'cluster'],
  demo: ['lib', 'server', 'proxy/auth', 'proxy/tls', 'scim'],
  cli: ['lib', 'server', 'demo', 'proxy/auth', 'audit'],
  bench: ['lib', 'server', 'demo', 'proxy', 'proxy/auth', 'proxy/session', 'scim', 'provision', 'audit'],
};

/** The room a file lives in: its top folder, or proxy/<room>. */
function room(file: string): string {
  const parts = file.split('/');
  return parts[0] === 'proxy' && parts.length > 2 ? `proxy/${parts[1]}` : parts[0]!;
}

function sourceFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '*.ts'], { cwd: REPO, encoding: 'utf8' });
  return out.split('\n').filter((f) => f !== '' && !f.startsWith('test/') && f.includes('/') && !f.endsWith('.d.ts'));
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

/** file -> the repo files it imports (relative specifiers only; packages are not layers). */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles()) {
    const text = readFileSync(join(REPO, file), 'utf8');
    const targets: string[] = [];
    for (const m of text.matchAll(IMPORT)) {
      const spec = (m[1] ?? m[2])!;
      targets.push(normalize(join(dirname(file), spec.replace(/\.js$/, '.ts'))));
    }
    graph.set(file, targets);
  }
  return graph;
}

describe('the layout (README "Architecture")', () => {
  const graph = importGraph();

  it('sees the source: every room of the table has files, and every file is in a room of the table', () => {
    const rooms = new Set([...graph.keys()].map(room));
    for (const r of rooms) expect(MAY_IMPORT, `room ${r} is not in the layer table`).toHaveProperty([r]);
    expect(graph.size).toBeGreaterThan(100);
  });

  it('every import crosses only an allowed arrow', () => {
    const wrong: string[] = [];
    for (const [file, targets] of graph) {
      for (const t of targets) {
        const from = room(file);
        const to = room(t);
        if (from !== to && !(MAY_IMPORT[from] ?? []).includes(to)) wrong.push(`${file} -> ${t}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('nothing imports cli/, and proxy/ imports no scim/, provision/, admin/, server/ or demo/', () => {
    const wrong: string[] = [];
    for (const [file, targets] of graph) {
      for (const t of targets) {
        if (room(t) === 'cli' && room(file) !== 'cli') wrong.push(`${file} -> ${t}`);
        if (file.startsWith('proxy/') && /^(scim|provision|admin|server|demo|cli)\//.test(t)) wrong.push(`${file} -> ${t}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it('no module imports itself back through a circle', () => {
    const circles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, 'open');
      stack.push(f);
      for (const t of graph.get(f) ?? []) {
        if (!graph.has(t)) continue;
        if (state.get(t) === 'open') circles.push([...stack.slice(stack.indexOf(t)), t].map((x) => relative('.', x)).join(' -> '));
        else if (state.get(t) === undefined) visit(t);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of graph.keys()) if (!state.has(f)) visit(f);
    expect(circles).toEqual([]);
  });

  it('the README shows every room of the table', () => {
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Architecture'), readme.indexOf('## Testing'));
    for (const r of Object.keys(MAY_IMPORT)) expect(section, `README architecture lacks ${r}/`).toContain(`\`${r}/\``);
  });
});
