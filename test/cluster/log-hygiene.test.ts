// Change-log hygiene (docs/design.md §8): rg_changes keeps only what a live instance may still need,
// and an instance that fell behind the pruned horizon (here: frozen longer than its expiry while the
// other instance kept writing and pruning) reloads the whole directory instead of missing what the
// log no longer holds; the revocations in what it missed end its sessions.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATCH_URN, USER_URN, startServeCluster, type Instance, type ServeCluster } from '../helpers/serve-cluster.js';
import { waitFor } from '../helpers/wait.js';

let cluster: ServeCluster;
let a: Instance;
let b: Instance;
const ids = new Map<string, string>();

beforeAll(async () => {
  cluster = await startServeCluster({ instances: 2 });
  [a, b] = cluster.instances as [Instance, Instance];
  for (const p of ['frozen.victim@corp.com', 'renamed.group.member@corp.com', 'bystander@corp.com']) ids.set(p, await cluster.provision(a, p, ['analysts']));
});
afterAll(async () => {
  b.serve.child.kill('SIGCONT');
  await cluster?.close();
});

async function storeQuery<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: cluster.storeUrl });
  await c.connect();
  try {
    return (await c.query<T>(sql)).rows;
  } finally {
    await c.end();
  }
}

/**
 * The log's size, its last change and how far it was pruned. The last change is the higher of the
 * newest row and the horizon: a live instance may prune every row before this reads them (on a
 * loaded machine the writes take longer than a prune cycle), and then the horizon is the last one.
 */
async function log(): Promise<{ rows: number; last: number; horizon: number }> {
  const [r] = await storeQuery<{ rows: number; last: string; horizon: string }>(
    `SELECT (SELECT count(*)::int FROM rg_changes) AS rows,
            greatest((SELECT max(seq) FROM rg_changes), (SELECT pruned_through FROM rg_log_horizon))::text AS last,
            (SELECT pruned_through::text FROM rg_log_horizon) AS horizon`,
  );
  return { rows: r!.rows, last: Number(r!.last), horizon: Number(r!.horizon) };
}

describe('the change log', () => {
  it('is pruned once every live instance applied it', async () => {
    for (let i = 0; i < 5; i++) expect((await a.scim('/Users', 'POST', { schemas: [USER_URN], userName: `prune${i}@corp.com`, active: true })).status).toBe(201);
    const { last } = await log();
    expect(last).toBeGreaterThan(0);
    // Heartbeats report each instance's position; the log is pruned every fifth beat (200 ms here).
    await waitFor(async () => (await log()).horizon >= last, 10_000, 'the log was not pruned up to the last write both instances applied');
    expect((await log()).rows).toBe(0);
    expect((await a.directory()).position).toBe(String(last));
    await cluster.expectInStep();
  });

  it('an instance frozen past its expiry, whose changes were pruned meanwhile, reloads the whole directory and ends what was revoked', async () => {
    const victim = await b.connect('frozen.victim@corp.com');
    const victimEnded = new Promise<Error & { code?: string }>((resolve) => victim.once('error', resolve));
    const member = await b.connect('renamed.group.member@corp.com');
    const memberEnded = new Promise<Error & { code?: string }>((resolve) => member.once('error', resolve));
    const bystander = await b.connect('bystander@corp.com');
    await bystander.query('select 1');
    const positionBefore = Number((await b.directory()).position);
    expect(await b.metric('rolegate_directory_reloads_total')).toBe(0);

    b.serve.child.kill('SIGSTOP');
    try {
      // B counts as dead after five silent beats; A writes on and prunes what only B lacked.
      await waitFor(async () => (await storeQuery(`SELECT 1 FROM rg_instances WHERE name = '${b.name}'`)).length === 0, 10_000, 'B did not expire');
      // The announcements wait in B's socket and would let it apply each write as it wakes. The first
      // write is too large to be announced whole, so B must go to the log, where it is pruned.
      const aliases = Array.from({ length: 600 }, (_, i) => ({ value: `frozen.alias.${i}@corp.com` }));
      expect((await a.scim('/Users', 'POST', { schemas: [USER_URN], userName: 'too.large.to.announce@corp.com', active: true, emails: aliases })).status).toBe(201);
      expect((await a.scim(`/Users/${ids.get('frozen.victim@corp.com')}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active: false } }] })).status).toBe(200);
      expect((await a.scim(`/Groups/${cluster.groupId('analysts')}`, 'PATCH', {
        schemas: [PATCH_URN],
        Operations: [{ op: 'remove', path: `members[value eq "${ids.get('renamed.group.member@corp.com')}"]` }],
      })).status).toBe(200);
      for (let i = 0; i < 3; i++) expect((await a.scim('/Users', 'POST', { schemas: [USER_URN], userName: `missed${i}@corp.com`, active: true })).status).toBe(201);
      const { last } = await log();
      await waitFor(async () => (await log()).horizon >= last, 10_000, 'A did not prune past B');
      expect(last).toBeGreaterThan(positionBefore);
    } finally {
      b.serve.child.kill('SIGCONT');
    }

    for (const ended of [victimEnded, memberEnded]) {
      const err = await Promise.race([ended, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no FATAL after B woke')), 10_000))]);
      expect(err).toMatchObject({ code: '57P01', message: 'access revoked' });
    }
    await waitFor(() => b.serve.output().includes('directory reloaded from the store'), 5_000, 'B did not reload');
    expect(await b.metric('rolegate_directory_reloads_total')).toBe(1);
    expect((await bystander.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
    await cluster.expectInStep();
    // B registered again and lists its sessions to the others.
    await waitFor(async () => (await storeQuery(`SELECT 1 FROM rg_instances WHERE name = '${b.name}'`)).length === 1, 5_000, 'B did not register again');
    await waitFor(async () => ((await (await a.admin('/sessions')).json()) as { sessions: { instance: string }[] }).sessions.some((s) => s.instance === b.name), 5_000, 'A does not list B’s sessions again');
    await bystander.end();
  });

  it('a logged change this version cannot read makes the instance reload the whole directory rather than skip it', async () => {
    const before = await a.metric('rolegate_directory_reloads_total');
    // What a newer rolegate might journal: a change type this one does not know.
    await storeQuery(`WITH c AS (INSERT INTO rg_changes (origin, payload) VALUES ('test', '[{"type":"user.renamed","id":"x"}]') RETURNING seq)
                      SELECT pg_notify('rolegate_directory', json_build_object('seq', seq::text, 'origin', 'test')::text) FROM c`);
    await waitFor(async () => (await a.metric('rolegate_directory_reloads_total')) === before + 1, 5_000, 'A did not reload');
    // A's log reaches this test through its stdout pipe, possibly after the metric.
    await waitFor(() => /a logged change this version cannot apply/.test(a.serve.output()), 5_000, 'A did not log why it reloaded');
    await cluster.expectInStep();
  });
});
