// The built `rolegate login` as a real process against a real oidc-provider: client credentials, the
// cache across runs, --exec (PGPASSWORD, exit status, signals), Ctrl+C while waiting, and every error
// as exactly one line on stderr with nothing on stdout.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, runCli } from '../helpers/cli.js';
import type { CliResult } from '../helpers/cli.js';
import { APP, startLoginFixture, URI_AUDIENCE } from './support.js';
import type { LoginFixture } from './support.js';

let fx: LoginFixture;
let cacheDir: string;
let appToken: string;

beforeAll(async () => {
  fx = await startLoginFixture();
  cacheDir = join(fx.dir, 'cli-cache');
});
afterAll(async () => {
  await fx?.close();
});

// The developer's own secret or cache must not leak into the test, nor the test's into them.
const env = (extra: Record<string, string> = {}): Record<string, string | undefined> => ({ ROLEGATE_CLIENT_SECRET: undefined, ROLEGATE_CACHE_DIR: cacheDir, ...extra });
const appArgs = (): string[] => ['login', '--issuer', fx.issuer, '--client-id', APP.clientId, '--audience', URI_AUDIENCE, '--ca', fx.caPath];

function expectOneErrorLine(r: CliResult, pattern: RegExp): void {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.split('\n');
  expect(lines.at(-1)).toBe('');
  expect(lines.slice(0, -1)).toEqual([expect.stringMatching(/^rolegate: /)]);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toContain(APP.clientSecret);
}

/** Spawns the bin and resolves once stderr matches `ready`; `exit` resolves with the exit code. */
function spawnUntil(args: string[], extraEnv: Record<string, string | undefined>, ready: (stderr: string) => boolean) {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const started = new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (ready(stderr)) resolve();
    });
    void exit.then(() => reject(new Error(`exited before ready: ${stderr}`)));
  });
  // Callers that wait on something else (a file) never look at `started`.
  started.catch(() => undefined);
  return { child, started, exit, stderr: () => stderr, stdout: () => stdout };
}

describe('rolegate login (built CLI): client credentials', () => {
  it('gets a token with --client-secret and prints only the token', async () => {
    const r = await runCli([...appArgs(), '--client-secret', APP.clientSecret], env());
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
    appToken = r.stdout.trim();
    expect(decodeJwt(appToken)).toMatchObject({ iss: fx.issuer, aud: URI_AUDIENCE, client_id: APP.clientId });
    expect((await readdir(cacheDir)).length).toBe(1);
  });

  it('takes the secret from ROLEGATE_CLIENT_SECRET and answers from the cache', async () => {
    const r = await runCli(appArgs(), env({ ROLEGATE_CLIENT_SECRET: APP.clientSecret }));
    expect(r).toEqual({ code: 0, stdout: `${appToken}\n`, stderr: '' });
  });

  it('a wrong secret is one line naming invalid_client, exit 1, and the secret is not echoed', async () => {
    const r = await runCli([...appArgs(), '--no-cache', '--client-secret', 'wrong-secret-SHOULD-NOT-APPEAR'], env());
    expectOneErrorLine(r, /^rolegate: client credentials grant refused by https:\/\/127\.0\.0\.1:\d+ \(.*invalid_client.*\)\n$/);
    expect(r.stderr).not.toContain('wrong-secret-SHOULD-NOT-APPEAR');
  });
});

describe('rolegate login --exec', () => {
  it('runs the command with PGPASSWORD set to the token and prints nothing itself', async () => {
    const out = join(fx.dir, 'pgpassword.out');
    const r = await runCli([...appArgs(), '--exec', 'sh', '-c', 'printf %s "$PGPASSWORD" > "$1"', 'sh', out], env({ ROLEGATE_CLIENT_SECRET: APP.clientSecret }));
    expect(r).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(await readFile(out, 'utf8')).toBe(appToken);
  });

  it.each([
    [['sh', '-c', 'exit 3'], 3],
    [['sh', '-c', 'kill -TERM $$'], 128 + 15],
  ])('exits with the command\'s status: %j -> %i', async (command, status) => {
    const r = await runCli([...appArgs(), '--exec', ...command], env({ ROLEGATE_CLIENT_SECRET: APP.clientSecret }));
    expect(r.code).toBe(status);
    expect(r.stderr).toBe('');
  });

  it('a command that does not exist is one line and exit 127', async () => {
    const r = await runCli([...appArgs(), '--exec', 'rolegate-no-such-command-xyz'], env({ ROLEGATE_CLIENT_SECRET: APP.clientSecret }));
    expect(r.code).toBe(127);
    expect(r.stderr).toBe('rolegate: cannot run "rolegate-no-such-command-xyz": command not found\n');
    expect(r.stdout).toBe('');
  });

  it('forwards SIGTERM to the command and exits with what the command chose', async () => {
    const ready = join(fx.dir, 'trap-ready');
    const script = `trap 'exit 7' TERM; : > "$1"; while :; do sleep 0.05; done`;
    const p = spawnUntil([...appArgs(), '--exec', 'sh', '-c', script, 'sh', ready], env({ ROLEGATE_CLIENT_SECRET: APP.clientSecret }), () => false);
    for (let i = 0; i < 200 && !existsSync(ready); i++) await new Promise((r) => setTimeout(r, 25));
    expect(existsSync(ready)).toBe(true);
    p.child.kill('SIGTERM');
    expect(await p.exit).toBe(7);
  });
});

describe('rolegate login (built CLI): the device flow', () => {
  it('Ctrl+C while waiting for approval prints one line and exits 1 at once', async () => {
    const args = ['login', '--issuer', fx.issuer, '--client-id', fx.t.issuer.clients.cli.clientId, '--ca', fx.caPath, '--no-cache'];
    const p = spawnUntil(args, env(), (s) => s.includes('Waiting for approval'));
    await p.started;
    expect(p.stderr()).toMatch(new RegExp(`^Open ${fx.issuer}/device and enter code [A-Z]{4}-[A-Z]{4}\n`));
    const t0 = Date.now();
    p.child.kill('SIGINT');
    expect(await p.exit).toBe(1);
    expect(Date.now() - t0).toBeLessThan(4_000); // not at the next 5 s poll
    expect(p.stderr().trimEnd().split('\n').at(-1)).toBe('rolegate: login cancelled');
    expect(p.stdout()).toBe('');
  });
});

describe('rolegate login (built CLI): failures are one line', () => {
  it.each([
    ['a malformed issuer', ['--issuer', 'not a url'], /--issuer is not a valid URL/],
    ['plain http off loopback', ['--issuer', 'http://idp.example.com'], /--issuer must use https/],
    ['an issuer nobody listens on', ['--issuer', 'https://127.0.0.1:1'], /cannot reach the issuer at https:\/\/127\.0\.0\.1:1 during discovery \(connect ECONNREFUSED/],
    ['a missing --ca file', ['--ca', '/nonexistent/ca.pem'], /cannot read --ca \/nonexistent\/ca\.pem \(ENOENT\)/],
  ])('%s', async (_name, override, pattern) => {
    const args = ['login', '--issuer', fx.issuer, '--client-id', APP.clientId, '--client-secret', APP.clientSecret, '--no-cache', ...override];
    expectOneErrorLine(await runCli(args, env()), pattern);
  });

  it('an issuer certificate from an unknown CA suggests --ca', async () => {
    const r = await runCli(['login', '--issuer', fx.issuer, '--client-id', APP.clientId, '--client-secret', APP.clientSecret, '--no-cache'], env());
    expectOneErrorLine(r, /during discovery .*; pass the issuer CA with --ca FILE\n$/);
  });

  it('a URL that is not an issuer (no discovery document)', async () => {
    const r = await runCli([...appArgs(), '--issuer', `${fx.issuer}/not-here`, '--client-secret', APP.clientSecret, '--no-cache'], env());
    expectOneErrorLine(r, /^rolegate: discovery with https:\/\/127\.0\.0\.1:\d+\/not-here failed: HTTP 404; is --issuer the issuer URL\?\n$/);
  });

  it('a client the issuer does not know, in the device flow', async () => {
    const r = await runCli(['login', '--issuer', fx.issuer, '--client-id', 'no-such-client', '--ca', fx.caPath, '--no-cache'], env());
    expectOneErrorLine(r, /^rolegate: device authorization refused by .*invalid_client/);
  });
});
