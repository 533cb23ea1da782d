// The supervisor of `proxy.workers` (docs/design.md §8, Workers) when things go wrong: a worker that
// cannot start stops the whole `serve` with its exit code and message; workers whose supervisor was
// killed (kill -9) end their sessions with 57P01 and exit, instead of lingering without a listener or being cut
// off with their audit lines unwritten.
import { mkdir, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDatabase } from '../helpers/postgres.js';
import { startServeCluster, type Instance, type ServeCluster } from '../helpers/serve-cluster.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';

let cluster: ServeCluster | undefined;
afterAll(async () => {
  await cluster?.close();
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('the workers\' supervisor', () => {
  it('stops with the worker\'s exit code and message when a worker cannot start', async () => {
    const dir = await tempDir();
    const store = await createTestDatabase('workers_store');
    try {
      // Worker 1's audit series is held by a live process (this one): it cannot start.
      await mkdir(join(dir.path, 'audit'));
      await writeFile(join(dir.path, 'audit', 'rolegate.gw-w1.lock'), `${process.pid} ${hostname()}\n`);
      const file = join(dir.path, 'held-audit.yaml');
      await writeFile(file, `
proxy: { listen: "127.0.0.1:0", allowPlaintext: true, workers: 2 }
upstream: { host: 127.0.0.1, tls: { mode: disable } }
oidc: { issuer: "https://127.0.0.1:1/", audience: rolegate }
roles: [{ role: app_reader, groups: [analysts], databases: [app], credentials: { password: unused } }]
directory: { store: "${store.url}" }
admin: { listen: "127.0.0.1:0" }
audit: { file: "${join(dir.path, 'audit', 'rolegate.jsonl')}" }
log: { level: warn }
`);
      const result = await runCli(['serve', '--config', file], { ROLEGATE_INSTANCE: 'gw' });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('cannot start: the audit files of instance "gw-w1" are in use');
      expect(result.stdout).toContain('a worker could not start; stopping the others');
    } finally {
      await store.drop();
      await dir.cleanup();
    }
  });

  it('workers end their sessions with a reason, write out their audit log and exit when their supervisor is killed', async () => {
    cluster = await startServeCluster({ instances: 1, proxyYaml: 'workers: 2' });
    const gw = cluster.instances[0] as Instance;
    await cluster.provision(gw, 'erin@corp.com', ['analysts']);
    const pids = gw.serve.output().split('\n').filter((l) => l.includes('"worker started"')).map((l) => (JSON.parse(l) as { workerPid: number }).workerPid);
    expect(pids).toHaveLength(2);
    let client: pg.Client | undefined;
    await waitFor(async () => {
      client = await gw.connect('erin@corp.com').catch(() => undefined);
      return client !== undefined;
    }, 5_000, 'erin cannot log in');
    const ended = new Promise<Error & { code?: string }>((resolve) => client?.once('error', resolve));
    await client?.query('select 1');
    gw.serve.child.kill('SIGKILL');
    // At once (no drainTimeout), in order: the client hears why, and the audit log has the end.
    expect(await ended).toMatchObject({ code: '57P01', message: 'server shutting down' });
    await waitFor(() => pids.every((p) => !alive(p)), 10_000, `workers ${pids.join(', ')} still running`);
    const events = gw.auditEvents();
    const started = events.filter((e) => e.type === 'session.start' && (e.person as { userName?: string } | undefined)?.userName === 'erin@corp.com');
    expect(started).toHaveLength(1);
    expect(events.filter((e) => e.type === 'session.end' && e.session === started[0]?.session)).toMatchObject([{ reason: 'shutdown' }]);
    expect(events.some((e) => e.type === 'statement' && e.session === started[0]?.session)).toBe(true);
  });
});
