// Child Node processes that use the compiled store (dist/), for tests that need a second process or
// a kill -9. CI builds before vitest; locally run `npm run build` first (checked below).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** file:// URL of dist/scim/store/open.js; throws when the build is missing or older than the sources. */
export function builtOpenStoreUrl(): string {
  const src = join(repo, 'scim/store');
  const out = join(repo, 'dist/scim/store');
  for (const f of readdirSync(src).filter((n) => n.endsWith('.ts'))) {
    const js = join(out, f.replace(/\.ts$/, '.js'));
    if (!existsSync(js) || statSync(js).mtimeMs < statSync(join(src, f)).mtimeMs) {
      throw new Error(`dist/scim/store/${f.replace(/\.ts$/, '.js')} is missing or stale: run \`npm run build\` first`);
    }
  }
  return pathToFileURL(join(out, 'open.js')).href;
}

/** Writes an ES module script into `dir` and returns its path. */
export async function writeScript(dir: string, name: string, source: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, source);
  return path;
}

export function startNode(script: string, args: string[]): ChildProcess {
  return spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], cwd: repo });
}

/** Calls `onLine` for every complete stdout line of `child`. */
export function onLines(child: ChildProcess, onLine: (line: string) => void): void {
  let rest = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    rest += chunk;
    let i: number;
    while ((i = rest.indexOf('\n')) !== -1) {
      onLine(rest.slice(0, i));
      rest = rest.slice(i + 1);
    }
  });
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

export function exitOf(child: ChildProcess): Promise<Exit> {
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (s: string) => {
    stderr += s;
  });
  return new Promise((resolveExit) => {
    child.on('exit', (code, signal) => resolveExit({ code, signal, stderr }));
  });
}
