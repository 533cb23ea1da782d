// Fan-out across instances (docs/design.md §8): a SCIM write to one `rolegate serve` ends the affected
// sessions on another within 1 s, for Okta's and Entra ID's deprovisioning shapes; a group removal
// ends only the session it affects; the other instance applies signed announcements without reading
// the log and ignores replayed ones; both instances' directories stay equal to a fresh load.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHANGE_CHANNEL } from '../../scim/store/postgres.js';
import { PATCH_URN, USER_URN, startServeCluster, type Instance, type ServeCluster } from '../helpers/serve-cluster.js';
import { waitFor } from '../helpers/wait.js';

let cluster: ServeCluster;
let a: Instance;
let b: Instance;
const ids = new Map<string, string>();

beforeAll(async () => {
  cluster = await startServeCluster({ instances: 2 });
  [a, b] = cluster.instances as [Instance, Instance];
  for (const [person, groups] of [
    ['okta.user@corp.com', ['analysts']],
    ['entra.user@corp.com', ['analysts']],
    ['removed@corp.com', ['analysts']],
    ['stays@corp.com', ['analysts']],
    ['deleted@corp.com', ['engineering']],
    ['forgery.target@corp.com', ['analysts']],
  ] as const) {
    ids.set(person, await cluster.provision(a, person, [...groups]));
  }
});
afterAll(async () => {
  await cluster?.close();
});

/** A session through `via` whose unsolicited FATAL is recorded with the time it arrived. */
async function watched(via: Instance, email: string): Promise<{ client: pg.Client; fatal: Promise<{ err: Error & { code?: string }; at: number }> }> {
  const client = await via.connect(email);
  const fatal = new Promise<{ err: Error & { code?: string }; at: number }>((resolve) => client.once('error', (err) => resolve({ err, at: performance.now() })));
  expect((await client.query('select 1 as ok')).rows).toEqual([{ ok: 1 }]);
  return { client, fatal };
}

async function scimOk(via: Instance, path: string, method: string, body?: unknown): Promise<void> {
  const res = await via.scim(path, method, body);
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
}

async function endsWithin1s(w: { fatal: Promise<{ err: Error & { code?: string }; at: number }> }, t0: number): Promise<void> {
  const { err, at } = await Promise.race([w.fatal, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no FATAL within 3 s')), 3_000))]);
  expect(err).toMatchObject({ code: '57P01', message: 'access revoked' });
  expect(at - t0).toBeLessThan(1_000);
}

describe('a SCIM write on instance A reaches sessions on instance B', () => {
  it('a deactivation sent to one instance ends the person’s session on another (was: only the instance that took the write saw it)', async () => {
    const w = await watched(b, 'okta.user@corp.com');
    const t0 = performance.now();
    // Okta deactivates with a path-less replace of `active`.
    await scimOk(a, `/Users/${ids.get('okta.user@corp.com')}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active: false } }] });
    // The writing instance answers once its own directory holds the write: the next login is refused.
    await expect(a.connect('okta.user@corp.com')).rejects.toMatchObject({ code: '28000', message: 'user "okta.user@corp.com" is deactivated' });
    await endsWithin1s(w, t0);
    // B's audit line reaches this test through its stdout pipe, possibly after the client's FATAL.
    await waitFor(() => b.auditEvents().some((e) => e.type === 'session.end' && e.reason === 'revoked'), 5_000, 'no session.end audit event on B');
    // And B refuses the person from now on, as A does.
    await expect(b.connect('okta.user@corp.com')).rejects.toMatchObject({ code: '28000', message: 'user "okta.user@corp.com" is deactivated' });
  });

  it('Entra ID’s shape (capitalised op, path, the string "False") ends the session on the other instance', async () => {
    const w = await watched(b, 'entra.user@corp.com');
    const t0 = performance.now();
    await scimOk(a, `/Users/${ids.get('entra.user@corp.com')}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'Replace', path: 'active', value: 'False' }] });
    await endsWithin1s(w, t0);
  });

  it('removing one member from a group ends only that member’s session', async () => {
    const removed = await watched(b, 'removed@corp.com');
    const stays = await watched(b, 'stays@corp.com');
    const t0 = performance.now();
    await scimOk(a, `/Groups/${cluster.groupId('analysts')}`, 'PATCH', {
      schemas: [PATCH_URN],
      Operations: [{ op: 'remove', path: `members[value eq "${ids.get('removed@corp.com')}"]` }],
    });
    await endsWithin1s(removed, t0);
    await new Promise((r) => setTimeout(r, 200));
    expect((await stays.client.query('select current_user as u')).rows).toEqual([{ u: cluster.roles.reader }]);
    await stays.client.end();
  });

  it('a delete on B ends a session on A: the fan-out runs both ways', async () => {
    const w = await watched(a, 'deleted@corp.com');
    const t0 = performance.now();
    await scimOk(b, `/Users/${ids.get('deleted@corp.com')}`, 'DELETE');
    await endsWithin1s(w, t0);
  });

  it('neither instance reads the log for writes announced whole: A applies its own, B the signed announcement (was: B read every write)', async () => {
    const [aBefore, bBefore] = [await a.metric('rolegate_directory_log_reads_total'), await b.metric('rolegate_directory_log_reads_total')];
    for (let i = 0; i < 20; i++) {
      expect((await a.scim('/Users', 'POST', { schemas: [USER_URN], userName: `reads.${i}@corp.com`, active: true })).status).toBe(201);
    }
    await cluster.expectInStep();
    // A applied its 20 writes from memory before answering them; its own announcements woke nothing.
    expect((await a.metric('rolegate_directory_log_reads_total')) - aBefore).toBeLessThanOrEqual(1);
    // B applied each from its signed announcement, which follows on from what B had applied.
    expect((await b.metric('rolegate_directory_log_reads_total')) - bBefore).toBeLessThanOrEqual(1);
    expect(await b.metric('rolegate_directory_forged_announcements_total')).toBe(0);
  });

  it('a replayed announcement is not applied: a person’s old deactivation, NOTIFYed again at B’s next position, leaves their new session alone', async () => {
    const target = ids.get('forgery.target@corp.com')!;
    // Anyone who may connect to the store may LISTEN: record the announcement of a real deactivation.
    const forger = new pg.Client({ connectionString: cluster.storeUrl });
    await forger.connect();
    try {
      const heard: string[] = [];
      forger.on('notification', (n) => heard.push(n.payload ?? ''));
      await forger.query(`LISTEN ${CHANGE_CHANNEL}`);
      await scimOk(a, `/Users/${target}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active: false } }] });
      await waitFor(() => heard.length === 1, 5_000, 'no announcement heard');
      const recorded = heard[0]!;
      await scimOk(a, `/Users/${target}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active: true } }] });
      await cluster.expectInStep();
      const w = await watched(b, 'forgery.target@corp.com');
      // The recorded writes moved to the next position, as a real batch would have it: applied, they
      // would deactivate the person again and end the session. Its signature covered the old position.
      const position = BigInt((await b.directory()).position);
      const announced = JSON.parse(recorded.slice(65)) as Record<string, unknown>;
      const moved = JSON.stringify({ ...announced, seq: String(position + 1n), seqs: [String(position + 1n)] });
      await forger.query('SELECT pg_notify($1, $2)', [CHANGE_CHANNEL, `${recorded.slice(0, 65)}${moved}`]);
      // A real write after it: notifications arrive in order, so once B holds this one it has handled the replay.
      expect((await a.scim('/Users', 'POST', { schemas: [USER_URN], userName: 'after.the.forgery@corp.com', active: true })).status).toBe(201);
      await cluster.expectInStep();
      expect(BigInt((await b.directory()).position)).toBeGreaterThan(position);
      expect((await w.client.query('select current_user as u')).rows).toEqual([{ u: cluster.roles.reader }]);
      expect(await b.metric('rolegate_directory_forged_announcements_total')).toBe(1);
      // B's log reaches this test through its stdout pipe, possibly after the metric.
      await waitFor(() => b.serve.output().includes('a signed change announcement did not verify'), 5_000, 'B did not log the forged announcement');
      await w.client.end();
    } finally {
      await forger.end();
    }
  });

  it('both directories equal a fresh load of the store', async () => {
    await cluster.expectInStep();
    const [va, vb] = [await a.directory(), await b.directory()];
    expect(va).toMatchObject({ store: 'postgres', current: true });
    expect(va.position).toBe(vb.position);
  });
});
