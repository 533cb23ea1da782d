// execWithToken with real child processes: the environment the command sees and the statuses it returns.
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXEC_EXIT, execWithToken } from '../../cli/login/exec.js';
import { tempDir } from '../helpers/tmp.js';
import type { TempDir } from '../helpers/tmp.js';

let tmp: TempDir;
beforeAll(async () => {
  tmp = await tempDir('rolegate-exec-');
});
afterAll(async () => {
  await tmp?.cleanup();
});

describe('execWithToken', () => {
  it('replaces any PGPASSWORD from the environment and keeps the rest', async () => {
    const out = join(tmp.path, 'env.out');
    const lines: string[] = [];
    const env = { PATH: process.env.PATH, PGPASSWORD: 'stale', PGUSER: 'ada@corp.com' };
    const code = await execWithToken(['sh', '-c', 'printf "%s|%s" "$PGPASSWORD" "$PGUSER" > "$1"', 'sh', out], 'fresh-token', env, (l) => lines.push(l));
    expect(code).toBe(0);
    expect(await readFile(out, 'utf8')).toBe('fresh-token|ada@corp.com');
    expect(lines).toEqual([]);
  });

  it.each([
    [['sh', '-c', 'exit 0'], 0],
    [['sh', '-c', 'exit 5'], 5],
    [['sh', '-c', 'exit 255'], 255],
    [['sh', '-c', 'kill -INT $$'], 130],
    [['sh', '-c', 'kill -KILL $$'], 137],
  ])('%j -> %i', async (command, status) => {
    expect(await execWithToken(command, 't', { PATH: process.env.PATH }, () => {})).toBe(status);
  });

  it.each([
    [['no-such-command-rolegate'], EXEC_EXIT.notFound, 'cannot run "no-such-command-rolegate": command not found'],
    [['sh\u0000x'], EXEC_EXIT.notExecutable, 'cannot run "sh\\u0000x": ERR_INVALID_ARG_VALUE'],
  ])('%j cannot start: one line, status %i', async (command, status, line) => {
    const lines: string[] = [];
    expect(await execWithToken(command, 'the-token', { PATH: process.env.PATH }, (l) => lines.push(l))).toBe(status);
    expect(lines).toEqual([line]);
  });

  it('a file without execute permission cannot start: one line, status 126', async () => {
    const file = join(tmp.path, 'not-executable.sh');
    await writeFile(file, 'exit 0\n', { mode: 0o644 });
    const lines: string[] = [];
    expect(await execWithToken([file], 't', { PATH: process.env.PATH }, (l) => lines.push(l))).toBe(EXEC_EXIT.notExecutable);
    expect(lines).toEqual([`cannot run ${JSON.stringify(file)}: EACCES`]);
  });

  // The CI failure at f1bee6b ("forwards SIGTERM to the command", test/login/cli.test.ts): the
  // forwarding handlers were installed after spawn, and a SIGTERM that came in between killed
  // rolegate by default. Here the signal is sent while the child's environment is being copied, just
  // before spawn: the process must survive it and exit with the command's status.
  it('a SIGTERM that arrives while the command is being started is forwarded, not fatal', async () => {
    const exec = fileURLToPath(new URL('../../dist/cli/login/exec.js', import.meta.url));
    const script = `
      const { execWithToken } = await import(${JSON.stringify(exec)});
      const env = new Proxy({ PATH: process.env.PATH }, {
        ownKeys(target) { process.kill(process.pid, 'SIGTERM'); return Reflect.ownKeys(target); },
      });
      process.exitCode = await execWithToken(['sh', '-c', "trap 'exit 7' TERM; while :; do sleep 0.05; done"], 't', env, () => {});
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
    expect(signal).toBeNull();
    // 7 when the shell had set its trap, 143 when the forwarded SIGTERM came first: its status either way.
    expect([7, 128 + 15]).toContain(code);
  });
});

