// Proxy benchmark (issue 12): pgbench against direct PostgreSQL, pgbouncer (session mode), rolegate and
// a bare Node relay (the floor of what any Node proxy costs here, bench/node-relay.ts), like for like:
// one set with TLS on both legs of every target and one with plain TCP on both legs, each leg's
// transport checked during every run, targets alternating round by round; every raw run,
// the machine, the versions and both proxies' pool sizes printed. Plus rolegate's resident memory
// with 1,000 idle TLS sessions.
import { execFile, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { createTokenVerifier } from '../proxy/auth/index.js';
import type { BenchRow } from './scim.js';
import { ensurePgbouncer, startBenchTargets, type BenchTargets, type Target, type TargetName, type Transport } from './targets.js';
import { geomean, median } from './stats.js';

export { provisionBenchPerson } from './targets.js';

const run = promisify(execFile);

export interface ProxyBenchOptions {
  dir: string;
  freePort: () => Promise<number>;
  seconds: number;
  rounds: number;
  idleSessions: number;
}

interface Workload {
  name: string;
  args: string[];
  /** Counted in the geometric means the issue's throughput targets are about. */
  throughput: boolean;
  transports: readonly Transport[];
}

const BOTH = ['tls', 'plain'] as const;
const WORKLOADS: Workload[] = [
  { name: 'select-only simple, 1 client', args: ['-S', '-M', 'simple', '-c', '1', '-j', '1'], throughput: true, transports: BOTH },
  { name: 'select-only simple, 8 clients', args: ['-S', '-M', 'simple', '-c', '8', '-j', '2'], throughput: true, transports: BOTH },
  { name: 'select-only extended, 1 client', args: ['-S', '-M', 'extended', '-c', '1', '-j', '1'], throughput: true, transports: BOTH },
  { name: 'select-only extended, 8 clients', args: ['-S', '-M', 'extended', '-c', '8', '-j', '2'], throughput: true, transports: BOTH },
  { name: 'new connection per transaction (-C), 4 clients', args: ['-S', '-C', '-c', '4', '-j', '2'], throughput: false, transports: ['tls'] },
];

/** The issue's targets for the geometric means of the four throughput workloads. */
const GEOMEAN_TARGETS: { transport: Transport; vs: TargetName; limit: number }[] = [
  { transport: 'tls', vs: 'pgbouncer', limit: 1.0 },
  { transport: 'tls', vs: 'direct', limit: 0.75 },
  { transport: 'plain', vs: 'pgbouncer', limit: 1.0 },
];

/** pgbouncer's default_pool_size (its own default) and rolegate's upstream.pool.idle. */
const POOL_SIZE = 20;
const TRANSPORT_NAME: Record<Transport, string> = { tls: 'TLS', plain: 'plain TCP' };

/** Runs the proxy benchmark; returns rows including ratio rows. */
export async function runProxyBench(opts: ProxyBenchOptions): Promise<BenchRow[]> {
  const env = await startBenchTargets({ dir: opts.dir, freePort: opts.freePort, maxSessions: opts.idleSessions, poolSize: POOL_SIZE });
  try {
    await printSetup(env);
    const cachedVerifyUs = await measureCachedVerify(env.issuer, env.caPem, env.token);
    const tps = new Map<string, number[]>();
    // CPU the proxy process spent per transaction: how much machine each proxy costs, apart from latency.
    const cpuPerTx = new Map<string, number[]>();
    // A first login fetches the issuer's keys and a cold process runs unoptimised code: one short
    // unmeasured run per target first, so round 1 does not measure start-up.
    for (const transport of BOTH) {
      for (const t of Object.values(env.targets[transport])) await pgbench(env.pg.binDir, t, ['-S', '-c', '2', '-j', '1'], 2, { sslmode: t.sslmode });
    }
    console.log('\nraw runs (tps without connection time, except -C; proxy CPU per transaction):');
    for (let round = 0; round < opts.rounds; round++) {
      for (const transport of BOTH) {
        for (const w of WORKLOADS.filter((x) => x.transports.includes(transport))) {
          // Alternate the order each round so no target always runs on a warmer machine.
          const order: TargetName[] = round % 2 === 0 ? ['direct', 'pgbouncer', 'node-relay', 'rolegate'] : ['rolegate', 'node-relay', 'pgbouncer', 'direct'];
          // The floor relay has no pool: a connection per transaction would measure PostgreSQL's logins.
          for (const name of order.filter((x) => w.throughput || x !== 'node-relay')) {
            const t = env.targets[transport][name];
            const cpu0 = cpuSeconds(t.pid());
            const value = await pgbenchChecked(env, t, w, opts.seconds);
            const cpu = cpuSeconds(t.pid()) - cpu0;
            const key = `${transport}|${w.name}|${name}`;
            tps.set(key, [...(tps.get(key) ?? []), value]);
            const us = (cpu * 1e6) / (value * opts.seconds);
            if (!Number.isNaN(cpu)) cpuPerTx.set(key, [...(cpuPerTx.get(key) ?? []), us]);
            console.log(`  round ${round + 1} | ${TRANSPORT_NAME[transport]} | ${w.name} | ${name}: ${value.toFixed(0)} tps${Number.isNaN(cpu) ? '' : `, ${us.toFixed(1)} µs CPU/tx`}`);
          }
        }
      }
    }
    const rows: BenchRow[] = [{ name: 'token verification, cached (per login)', value: cachedVerifyUs, unit: 'µs', target: { op: '<=', limit: 50 } }];
    const ratios = new Map<string, number[]>();
    for (const transport of BOTH) {
      const T = TRANSPORT_NAME[transport];
      for (const w of WORKLOADS.filter((x) => x.transports.includes(transport))) {
        const [d, b, r, n] = (['direct', 'pgbouncer', 'rolegate', 'node-relay'] as const).map((x) => median(tps.get(`${transport}|${w.name}|${x}`))) as [number, number, number, number];
        const cpuOf = (x: TargetName): number => median(cpuPerTx.get(`${transport}|${w.name}|${x}`));
        rows.push({ name: `${T}, ${w.name}: direct tps`, value: d, unit: 'tps' });
        rows.push({ name: `${T}, ${w.name}: pgbouncer tps`, value: b, unit: 'tps' });
        if (w.throughput) rows.push({ name: `${T}, ${w.name}: bare Node relay tps`, value: n, unit: 'tps' });
        rows.push({ name: `${T}, ${w.name}: rolegate tps`, value: r, unit: 'tps' });
        rows.push({ name: `${T}, ${w.name}: rolegate/direct`, value: r / d, unit: 'x' });
        rows.push({ name: `${T}, ${w.name}: rolegate/pgbouncer`, value: r / b, unit: 'x' });
        if (w.throughput) rows.push({ name: `${T}, ${w.name}: rolegate/bare Node relay`, value: r / n, unit: 'x' });
        rows.push({ name: `${T}, ${w.name}: pgbouncer CPU per transaction`, value: cpuOf('pgbouncer'), unit: 'µs' });
        if (w.throughput) rows.push({ name: `${T}, ${w.name}: bare Node relay CPU per transaction`, value: cpuOf('node-relay'), unit: 'µs' });
        rows.push({ name: `${T}, ${w.name}: rolegate CPU per transaction`, value: cpuOf('rolegate'), unit: 'µs' });
        if (w.throughput) {
          const add = (k: string, x: number): void => void ratios.set(`${transport}|${k}`, [...(ratios.get(`${transport}|${k}`) ?? []), x]);
          add('direct', r / d);
          add('pgbouncer', r / b);
          add('node-relay', r / n);
          add('node-relay/pgbouncer', n / b);
        }
      }
    }
    for (const g of GEOMEAN_TARGETS) {
      const xs = ratios.get(`${g.transport}|${g.vs}`) ?? [];
      rows.push({ name: `${TRANSPORT_NAME[g.transport]}, -S simple and extended, 1 and 8 clients: geometric mean of rolegate/${g.vs}`, value: geomean(xs), unit: 'x', target: { op: '>=', limit: g.limit } });
    }
    // No targets: where the platform stands (the floor against pgbouncer) and how close rolegate is to it.
    for (const transport of BOTH) {
      const T = TRANSPORT_NAME[transport];
      rows.push({ name: `${T}, the same four: geometric mean of bare Node relay/pgbouncer`, value: geomean(ratios.get(`${transport}|node-relay/pgbouncer`) ?? []), unit: 'x' });
      rows.push({ name: `${T}, the same four: geometric mean of rolegate/bare Node relay`, value: geomean(ratios.get(`${transport}|node-relay`) ?? []), unit: 'x' });
    }

    // 1,000 idle TLS sessions through rolegate: its resident memory before and after.
    const rolegate = env.rolegate.tls;
    const port = env.targets.tls.rolegate.port;
    const before = rolegate.memory().rssMiB;
    const clients: pg.Client[] = [];
    for (let i = 0; i < opts.idleSessions; i += 50) {
      const batch = Array.from({ length: Math.min(50, opts.idleSessions - i) }, async () => {
        const c = new pg.Client({ host: 'localhost', port, user: 'bench@corp.example', password: env.token, database: 'bench', ssl: { ca: env.caPem } });
        c.on('error', () => {});
        await c.connect();
        clients.push(c);
      });
      await Promise.all(batch);
    }
    const after = rolegate.memory().rssMiB;
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
    rows.push({ name: `rolegate RSS with ${opts.idleSessions} idle sessions`, value: after, unit: 'MiB' });
    rows.push({ name: `rolegate RSS per idle session`, value: ((after - before) * 1024) / opts.idleSessions, unit: 'KiB' });
    return rows;
  } finally {
    await env.stop();
  }
}


/** The machine, the versions of everything measured, the commit and both proxies' pool sizes. */
async function printSetup(env: BenchTargets): Promise<void> {
  const version = async (cmd: string, args: string[] = ['--version']): Promise<string> => {
    try {
      const { stdout, stderr } = await run(cmd, args);
      return `${stdout}${stderr}`.trim().split('\n')[0] ?? '';
    } catch (err) {
      return `unknown (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
    }
  };
  const cores = cpus();
  const commit = await version('git', ['rev-parse', '--short', 'HEAD']);
  const dirty = await run('git', ['status', '--porcelain', '--untracked-files=no']).then((r) => (r.stdout.trim() === '' ? '' : ' (with uncommitted changes)'), () => '');
  console.log('\nproxy benchmark setup:');
  console.log(`  machine: ${cores.length} cores, ${cores[0]?.model ?? 'unknown model'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB memory`);
  console.log(`  node ${process.version}; ${await version(join(env.pg.binDir, 'postgres'))}; ${await version(await ensurePgbouncer())}; ${await version(join(env.pg.binDir, 'pgbench'))}`);
  console.log(`  git commit ${commit}${dirty}`);
  console.log(`  pool sizes: pgbouncer default_pool_size = ${env.poolSize} (session mode), rolegate upstream.pool.idle = ${env.poolSize}`);
  console.log('  TLS set: client legs sslmode=require; pgbouncer client_tls_sslmode=require, server_tls_sslmode=verify-full; rolegate proxy.tls, upstream.tls.mode verify-full; direct sslmode=require');
  console.log('  bare Node relay (bench/node-relay.ts): the same transports as rolegate on both legs, TCP_NODELAY, bytes relayed as they come; no login, taps, audit or pool');
  console.log('  plain TCP set: client legs sslmode=disable; pgbouncer client_tls_sslmode=disable, server_tls_sslmode=disable; rolegate allowPlaintext on 127.0.0.1, upstream.tls.mode disable; direct sslmode=disable');
}

/**
 * One pgbench run whose server legs are checked while it runs (pg_stat_ssl of the backends serving
 * the proxy, or pgbench itself for direct): a run over the wrong transport fails the benchmark.
 */
async function pgbenchChecked(env: BenchTargets, t: Target, w: Workload, seconds: number): Promise<number> {
  let benchPid: number | undefined;
  const checks: Promise<unknown>[] = [];
  const timers: NodeJS.Timeout[] = [];
  const seen: { port: number; ssl: boolean }[] = [];
  const check = async (): Promise<void> => {
    const pid = t.pid() ?? benchPid;
    if (pid !== undefined) seen.push(...(await env.serverLegs(pid)));
  };
  const value = await pgbench(env.pg.binDir, t, w.args, seconds, {
    sslmode: t.sslmode,
    onStart: (pid) => {
      benchPid = pid;
      // Settled (never rejected) promises: a failed check is reported below, after pgbench ends.
      const sample = (): void => void checks.push(check().then(() => undefined, (err: unknown) => err));
      for (const at of [0.3, 0.6, 0.85]) timers.push(setTimeout(sample, at * seconds * 1000));
    },
  }).finally(() => timers.forEach(clearTimeout));
  const failed = (await Promise.all(checks)).find((x) => x !== undefined);
  if (failed !== undefined) throw new Error(`${t.name}, ${w.name}: the transport check failed: ${String(failed)}`);
  const label = `${t.name} over ${TRANSPORT_NAME[t.transport]}, ${w.name}`;
  if (seen.length === 0) throw new Error(`${label}: no server leg seen during the run`);
  const wrong = seen.filter((l) => l.ssl !== (t.transport === 'tls'));
  if (wrong.length > 0) throw new Error(`${label}: ${wrong.length} of ${seen.length} server legs seen ${t.transport === 'tls' ? 'without' : 'with'} TLS`);
  return value;
}

/**
 * One pgbench run against `target`; its tps (without connection time). `sslmode` is the client
 * leg's (default require: never falls back to plain TCP); `onStart` gets pgbench's process id.
 */
export async function pgbench(
  binDir: string,
  target: { port: number; user: string; password: string },
  args: string[],
  seconds: number,
  opts: { sslmode?: 'require' | 'disable'; onStart?: (pid: number) => void } = {},
): Promise<number> {
  const argv = [...args, '-n', '-T', String(seconds), '-h', 'localhost', '-p', String(target.port), '-U', target.user, 'bench'];
  const child = spawn(join(binDir, 'pgbench'), argv, {
    env: { ...process.env, PGPASSWORD: target.password, PGSSLMODE: opts.sslmode ?? 'require' },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: (seconds + 60) * 1000,
  });
  if (child.pid !== undefined) opts.onStart?.(child.pid);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c) => resolve(c));
  });
  if (code !== 0) {
    // pgbench says why (a refused login, a dropped connection): keep its last lines.
    const said = `${stderr}\n${stdout}`.trim().split('\n').filter((l) => l !== '').slice(-4).join(' | ');
    throw new Error(`pgbench exited ${code}: ${said}`);
  }
  const m = /tps = ([\d.]+) \((?:without initial connection time|excluding connections establishing)\)/.exec(stdout) ?? /tps = ([\d.]+)/.exec(stdout);
  if (m === null) throw new Error(`pgbench output not understood: ${stdout}`);
  return Number(m[1]);
}

/** User + system CPU seconds a process has used so far (Linux /proc; clock ticks of 1/100 s). */
export function cpuSeconds(pid: number | undefined): number {
  return pid === undefined ? NaN : statCpuSeconds(`/proc/${pid}/stat`);
}

/** The same for a process's main thread only: a Node process's event loop. */
export function mainThreadCpuSeconds(pid: number | undefined): number {
  return pid === undefined ? NaN : statCpuSeconds(`/proc/${pid}/task/${pid}/stat`);
}

/**
 * The part of that spent in user mode: the JavaScript, V8 and Node's own code, without the kernel's
 * socket and scheduling work, whose cost on a shared virtual machine moves with everything else
 * running there. In a quiet run, rounds of the same code differ by one to three microseconds a
 * transaction in it and by ten or more in the total (bench/audit.ts, pgbench at 8 clients on two
 * cores); work from outside the benchmark moves both.
 */
export function mainThreadUserSeconds(pid: number | undefined): number {
  return pid === undefined ? NaN : statCpuSeconds(`/proc/${pid}/task/${pid}/stat`, 'user');
}

/**
 * CPU seconds every core of the machine has been busy so far, and idle (Linux /proc/stat, clock ticks
 * of 1/100 s): busy counts user, nice, system, interrupts and steal, so that the benchmark can show what
 * a change costs the whole machine (pgbench and PostgreSQL included), not only the process under test.
 */
export function machineCpuSeconds(): { busy: number; idle: number } {
  try {
    const [user, nice, system, idle, iowait, irq, softirq, steal] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] as string)
      .trim().split(/\s+/).slice(1, 9).map(Number) as [number, number, number, number, number, number, number, number];
    return { busy: (user + nice + system + irq + softirq + steal) / 100, idle: (idle + iowait) / 100 };
  } catch {
    return { busy: NaN, idle: NaN };
  }
}

function statCpuSeconds(path: string, part: 'all' | 'user' = 'all'): number {
  try {
    // Fields after the parenthesised command name: state is the 3rd field, utime the 14th, stime the 15th.
    const stat = readFileSync(path, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const user = Number(fields[11]);
    return (part === 'user' ? user : user + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/**
 * What a login pays for a token it has seen before (a reconnecting pool, `-C`): the verifier's cache
 * lookup, a SHA-256 of the token and the exp check, with no signature check and no network.
 */
async function measureCachedVerify(issuerUrl: string, caPem: string, token: string): Promise<number> {
  const verifier = createTokenVerifier({ issuer: issuerUrl, audience: 'rolegate', algorithms: ['RS256', 'ES256'], clockToleranceSec: 30, identityClaim: 'email', ca: caPem });
  try {
    await verifier.verify(token);
    for (let i = 0; i < 2_000; i++) await verifier.verify(token); // let the JIT settle
    const n = 20_000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await verifier.verify(token);
    return Number(process.hrtime.bigint() - t0) / 1_000 / n;
  } finally {
    verifier.close();
  }
}
