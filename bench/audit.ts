// Audit benchmark (issue 10): pgbench -S at 8 clients through two `rolegate serve` processes, one with
// statement auditing on and one with it off, alternating round by round; the audit file's bytes per
// statement; and `rolegate audit sessions|search --person` over a generated 1 GB audit file
// (2.1 million statements: about 7,000 sessions of 1,000 people, 300 pgbench-like statements each).
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { GENESIS, sealLine, type ChainHead } from '../audit/chain.js';
import type { AuditEvent } from '../audit/events.js';
import { createCertificateAuthority, issueCert } from '../demo/certs.js';
import { startDevIssuer } from '../demo/dev-issuer.js';
import { startLocalPostgres } from '../demo/local-postgres.js';
import { cpuSeconds, machineCpuSeconds, mainThreadCpuSeconds, mainThreadUserSeconds, pgbench, provisionBenchPerson } from './proxy.js';
import type { BenchRow } from './scim.js';
import { startServeProcess, type ServeProcess } from './serve-process.js';
import { median } from './stats.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/rolegate.js', import.meta.url));

/** The unmeasured run each gateway gets before the rounds. */
const WARM_UP_SECONDS = 5;

/** The gateways: auditing on and off, and with BENCH_AUDIT_VARIANT another build auditing. */
type Mode = 'on' | 'off' | 'variant';

/** One empty list of round figures per gateway. */
const perMode = (): Record<Mode, number[]> => ({ on: [], off: [], variant: [] });

export interface AuditBenchOptions {
  dir: string;
  freePort: () => Promise<number>;
  seconds: number;
  rounds: number;
  /** Size of the generated audit file for the search figure. */
  searchBytes: number;
}

export async function runAuditBench(opts: AuditBenchOptions): Promise<BenchRow[]> {
  const rows: BenchRow[] = [];
  const stops: (() => Promise<void>)[] = [];
  try {
    const pgDir = join(opts.dir, 'pg');
    await mkdir(pgDir);
    const ca = await createCertificateAuthority(opts.dir);
    const server = await issueCert({ cn: 'localhost', ...ca, dir: opts.dir, fileName: 'server' });
    const superPassword = randomBytes(12).toString('hex');
    const pgPort = await opts.freePort();
    const cluster = await startLocalPostgres({
      dir: pgDir, port: pgPort, superuserPassword: superPassword,
      tls: { certPath: server.certPath, keyPath: server.keyPath },
      hba: ['host all all 127.0.0.1/32 scram-sha-256'],
    });
    stops.push(() => cluster.stop());
    const rolePassword = randomBytes(12).toString('hex');
    const admin = new pg.Client({ host: '127.0.0.1', port: pgPort, user: 'postgres', password: superPassword, database: 'postgres', ssl: { rejectUnauthorized: false } });
    await admin.connect();
    await admin.query(`CREATE ROLE bench_user LOGIN PASSWORD '${rolePassword}'`);
    await admin.query('CREATE DATABASE bench OWNER bench_user');
    await admin.end();
    await run(join(cluster.binDir, 'pgbench'), ['-i', '-q', '-s', '1', '-h', '127.0.0.1', '-p', String(pgPort), '-U', 'bench_user', 'bench'], {
      env: { ...process.env, PGPASSWORD: rolePassword, PGSSLMODE: 'require' },
    });

    const issuerCert = await issueCert({ cn: '127.0.0.1', ...ca, dir: opts.dir, fileName: 'issuer', sans: ['IP:127.0.0.1', 'DNS:localhost'] });
    const caPem = await readFile(ca.caCertPath, 'utf8');
    const issuer = await startDevIssuer({
      audience: 'rolegate',
      tls: { cert: await readFile(issuerCert.certPath, 'utf8'), key: await readFile(issuerCert.keyPath, 'utf8'), ca: caPem },
    });
    stops.push(() => issuer.close());

    // Two gateways, the same in everything but audit.statements; with BENCH_AUDIT_VARIANT a third,
    // auditing too, run from another checkout's build (its bin/rolegate.js), so that a change to the
    // audit's path is measured against the current code in the same run, round by round.
    const variantBin = process.env['BENCH_AUDIT_VARIANT'];
    const modes: readonly Mode[] = variantBin === undefined ? ['on', 'off'] : ['on', 'off', 'variant'];
    if (variantBin !== undefined) console.error(`audit variant: ${variantBin}`);
    const gateways: Record<Mode, { proxyPort: number; serve: ServeProcess; auditDir: string }> = {} as never;
    for (const mode of modes) {
      const dir = join(opts.dir, `gw-${mode}`);
      await mkdir(dir);
      const scimToken = randomBytes(24).toString('base64url');
      const [proxyPort, adminPort] = [await opts.freePort(), await opts.freePort()];
      const serve = await startServeProcess(dir, `
proxy: { listen: "127.0.0.1:${proxyPort}", tls: { cert: "${server.certPath}", key: "${server.keyPath}" } }
upstream: { host: 127.0.0.1, port: ${pgPort}, tls: { mode: verify-full, ca: "${ca.caCertPath}" }, pool: { idle: 20 } }
oidc: { issuer: "${issuer.issuer}", audience: rolegate, ca: "${ca.caCertPath}" }
roles: [{ role: bench_user, groups: [bench], databases: [bench], credentials: { password: "\${BENCH_ROLE_PASSWORD}" } }]
directory: { store: "sqlite:${join(dir, 'directory.db')}" }
scim: { tokens: ["\${BENCH_SCIM_TOKEN}"] }
admin: { listen: "127.0.0.1:${adminPort}" }
audit: { file: audit/rolegate.jsonl, statements: ${mode === 'variant' || (mode === 'on' && process.env['BENCH_AUDIT_AA'] === undefined)} }
log: { level: warn }
`, adminPort, { BENCH_ROLE_PASSWORD: rolePassword, BENCH_SCIM_TOKEN: scimToken, ROLEGATE_INSTANCE: `bench-${mode}` }, mode === 'variant' ? variantBin : undefined);
      stops.push(() => serve.stop());
      await provisionBenchPerson(serve.adminUrl, scimToken);
      gateways[mode] = { proxyPort, serve, auditDir: join(dir, 'audit') };
    }
    const token = await issuer.tokenFor('bench@corp.example', { expiresInSec: 3600 });
    const args = ['-S', '-M', 'simple', '-c', '8', '-j', '2'];
    // How pgbench reaches a gateway: the same person and token for the warm-up and every round.
    const client = (mode: Mode) => ({ port: gateways[mode].proxyPort, user: 'bench@corp.example', password: token });
    const tps: Record<Mode, number[]> = perMode();
    // CPU the gateway process (all its threads) spent per transaction, and the part of it on the event
    // loop (the rest: V8's helpers, libuv's pool, where the audit's file operations run).
    const cpu: Record<Mode, number[]> = perMode();
    const loop: Record<Mode, number[]> = perMode();
    // The event loop's user-mode part: what the audit's own code costs, without the kernel's share,
    // which moves with the machine's load (bench/proxy.ts mainThreadUserSeconds).
    const user: Record<Mode, number[]> = perMode();
    // The whole machine's busy CPU per transaction (pgbench, PostgreSQL, the gateway, everything else),
    // and the share of its cores left idle: what the gateway's extra work costs the others too.
    const machine: Record<Mode, number[]> = perMode();
    const idle: Record<Mode, number[]> = perMode();
    // A fresh gateway runs unoptimised code and grows its heaps under its first load, and the auditing
    // one has more code to warm: one unmeasured run of the same workload each first (as bench/proxy.ts
    // does), so that round 1 does not measure start-up.
    for (const mode of modes) {
      await pgbench(cluster.binDir, client(mode), args, WARM_UP_SECONDS);
    }
    // Each gateway goes first, second (and third) in turn, so that drift in the host's speed during
    // a run falls on all of them alike.
    const orders: readonly (readonly Mode[])[] = modes.length === 2
      ? [['off', 'on'], ['on', 'off']]
      : [['off', 'on', 'variant'], ['on', 'variant', 'off'], ['variant', 'off', 'on']];
    for (let round = 0; round < opts.rounds; round++) {
      for (const mode of orders[round % orders.length] as readonly Mode[]) {
        const pid = gateways[mode].serve.child.pid;
        const [cpu0, loop0, user0, machine0] = [cpuSeconds(pid), mainThreadCpuSeconds(pid), mainThreadUserSeconds(pid), machineCpuSeconds()];
        const value = await pgbench(cluster.binDir, client(mode), args, opts.seconds);
        const machine1 = machineCpuSeconds();
        tps[mode].push(value);
        const perTx = (seconds: number): number => (seconds * 1e6) / (value * opts.seconds);
        cpu[mode].push(perTx(cpuSeconds(pid) - cpu0));
        loop[mode].push(perTx(mainThreadCpuSeconds(pid) - loop0));
        user[mode].push(perTx(mainThreadUserSeconds(pid) - user0));
        // Over the whole pgbench run, its connection set-up included (a few ms of 8 s).
        machine[mode].push(perTx(machine1.busy - machine0.busy));
        idle[mode].push((100 * (machine1.idle - machine0.idle)) / (machine1.idle - machine0.idle + machine1.busy - machine0.busy));
        console.error(
          `audit ${mode}, round ${round + 1}: ${value.toFixed(0)} tps, CPU ${cpu[mode].at(-1)?.toFixed(1)} µs a transaction, of it the event loop ${loop[mode].at(-1)?.toFixed(1)} µs (${user[mode].at(-1)?.toFixed(1)} µs in user mode); ` +
            `the machine ${machine[mode].at(-1)?.toFixed(1)} µs a transaction, ${idle[mode].at(-1)?.toFixed(0)} % idle`,
        );
      }
    }
    const [on, off] = [median(tps.on), median(tps.off)];
    rows.push({ name: 'pgbench -S, 8 clients, statement auditing off: tps', value: off, unit: 'tps' });
    rows.push({ name: 'pgbench -S, 8 clients, statement auditing on: tps', value: on, unit: 'tps' });
    rows.push({ name: 'statement auditing on/off', value: on / off, unit: 'x' });
    rows.push({ name: 'throughput lost to statement auditing', value: Math.max(0, (1 - on / off) * 100), unit: '%', target: { op: '<=', limit: 10 } });
    rows.push({ name: 'rolegate CPU per transaction, auditing off', value: median(cpu.off), unit: 'µs' });
    rows.push({ name: 'rolegate CPU per transaction, auditing on (all threads)', value: median(cpu.on), unit: 'µs' });
    const others = (mode: Mode): number[] => cpu[mode].map((c, i) => c - (loop[mode][i] as number));
    rows.push(
      { name: 'of it on the event loop, auditing off', value: median(loop.off), unit: 'µs' },
      { name: 'of it on the event loop, auditing on', value: median(loop.on), unit: 'µs' },
      { name: 'of that in user mode, auditing off', value: median(user.off), unit: 'µs' },
      { name: 'of that in user mode, auditing on', value: median(user.on), unit: 'µs' },
      { name: 'what auditing adds to the event loop in user mode (the steadiest figure)', value: median(user.on) - median(user.off), unit: 'µs' },
      { name: 'of it on other threads (V8 helpers, libuv\'s pool), auditing off', value: median(others('off')), unit: 'µs' },
      { name: 'of it on other threads (V8 helpers, libuv\'s pool), auditing on', value: median(others('on')), unit: 'µs' },
    );
    // What the rest of the machine (pgbench, PostgreSQL) spends per transaction: the gateway's cost
    // to the others, and, when it moves between runs of the same code, a sign of other load on the host.
    const outside = (mode: Mode): number[] => machine[mode].map((m, i) => m - (cpu[mode][i] as number));
    rows.push(
      { name: 'the whole machine\'s CPU per transaction (pgbench, PostgreSQL, rolegate), auditing off', value: median(machine.off), unit: 'µs' },
      { name: 'the whole machine\'s CPU per transaction, auditing on', value: median(machine.on), unit: 'µs' },
      { name: 'of it outside rolegate, auditing off', value: median(outside('off')), unit: 'µs' },
      { name: 'of it outside rolegate, auditing on', value: median(outside('on')), unit: 'µs' },
      { name: 'the machine idle (share of all its cores), auditing off', value: median(idle.off), unit: '%' },
      { name: 'the machine idle (share of all its cores), auditing on', value: median(idle.on), unit: '%' },
    );

    if (variantBin !== undefined) {
      // Round by round against the auditing gateway of this checkout: the pairs see the same host.
      const ratio = tps.variant.map((v, i) => v / (tps.on[i] as number));
      const extra = cpu.variant.map((v, i) => v - (cpu.on[i] as number));
      rows.push(
        { name: 'the variant build, statement auditing on: tps', value: median(tps.variant), unit: 'tps' },
        { name: 'the variant / auditing off', value: median(tps.variant) / off, unit: 'x' },
        { name: 'the variant / auditing on, median of the rounds\' ratios', value: median(ratio), unit: 'x' },
        { name: 'rolegate CPU per transaction, the variant', value: median(cpu.variant), unit: 'µs' },
        { name: 'the variant minus auditing on, CPU per transaction, median of the rounds', value: median(extra), unit: 'µs' },
        { name: `rounds in which the variant spent less CPU per transaction (of ${extra.length})`, value: extra.filter((x) => x < 0).length, unit: 'rounds' },
      );
    }

    // Bytes per statement, from what the auditing gateway wrote (its statement lines, newline included).
    await gateways.on.serve.stop();
    let statementBytes = 0;
    let statements = 0;
    for (const name of await readdir(gateways.on.auditDir)) {
      if (!name.endsWith('.jsonl')) continue;
      for (const line of (await readFile(join(gateways.on.auditDir, name), 'utf8')).split('\n')) {
        if (!line.includes('"type":"statement"')) continue;
        statements++;
        statementBytes += Buffer.byteLength(line) + 1;
      }
    }
    rows.push({ name: `audit bytes per statement (${statements} statements)`, value: statementBytes / statements, unit: 'B' });
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }

  // `audit sessions|search --person` over a generated 1 GB file (--audit-bytes 0 skips it).
  if (opts.searchBytes <= 0) return rows;
  const big = join(opts.dir, 'big');
  await mkdir(big);
  const generated = await generateAuditFile(join(big, 'rolegate.bench.000001.jsonl'), opts.searchBytes);
  rows.push({ name: 'generated audit file', value: generated.bytes / 1e9, unit: 'GB' });
  rows.push({ name: 'statements in it', value: generated.statements / 1e6, unit: 'million' });
  for (const verb of ['sessions', 'search'] as const) {
    const t0 = performance.now();
    const { stdout } = await run(process.execPath, [BIN, 'audit', verb, '--person', generated.person, '--json', big], { maxBuffer: 256 * 1024 * 1024 });
    const seconds = (performance.now() - t0) / 1000;
    const found = stdout.split('\n').filter((l) => l !== '').length;
    rows.push({ name: `audit ${verb} --person over ${(generated.bytes / 1e9).toFixed(2)} GB (${found} ${verb === 'sessions' ? 'sessions' : 'events'})`, value: seconds, unit: 's', target: { op: '<=', limit: 10 } });
  }
  return rows;
}

/**
 * Writes a sealed audit file of about `bytes`: sessions of 1,000 people, each a session.start, 300
 * pgbench-like statements and a session.end. Returns the person whose sessions are searched for.
 */
export async function generateAuditFile(file: string, bytes: number): Promise<{ bytes: number; statements: number; person: string }> {
  const out = createWriteStream(file);
  let head: ChainHead = { seq: 0, hash: GENESIS };
  let t = Date.parse('2026-11-23T08:00:00Z');
  let written = 0;
  let statements = 0;
  let buffer: string[] = [];
  const emit = async (e: AuditEvent): Promise<void> => {
    const sealed = sealLine(e, new Date((t += 3)).toISOString(), 'bench', head);
    head = sealed.head;
    buffer.push(sealed.line);
    written += sealed.line.length + 1;
    if (buffer.length >= 2000) {
      const chunk = `${buffer.join('\n')}\n`;
      buffer = [];
      if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
  };
  for (let s = 0; written < bytes; s++) {
    const session = randomUUID();
    const person = `person${s % 1000}@corp.example`;
    await emit({
      type: 'session.start', session, client: { address: `10.0.${s % 250}.${(s * 7) % 250}`, port: 40000 + (s % 20000) }, tls: { version: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384' },
      person: { userName: person, id: `id-${s % 1000}` }, token: { iss: 'https://idp.corp.example/', sub: person, jti: null, exp: 1_800_000_000 }, groups: ['bench'],
      requestedUser: person, database: 'bench', role: 'bench_user', application: 'pgbench',
    });
    for (let n = 1; n <= 300; n++) {
      await emit({
        type: 'statement', session, n, protocol: 'simple', text: `SELECT abalance FROM pgbench_accounts WHERE aid = ${(s * 300 + n) % 100000};`,
        params: { count: 0 }, outcome: 'ok', tag: 'SELECT 1', rows: 1, sqlstate: null, ms: 0.21,
      });
      statements++;
    }
    await emit({ type: 'session.end', session, reason: 'client_exit', ms: 900, bytesIn: 30_000, bytesOut: 60_000, statements: 300 });
  }
  out.end(buffer.length > 0 ? `${buffer.join('\n')}\n` : '');
  await new Promise<void>((r) => out.once('finish', () => r()));
  return { bytes: (await stat(file)).size, statements, person: 'person7@corp.example' };
}
