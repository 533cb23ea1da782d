// The Prometheus metrics of docs/design.md §5, scraped from the real /metrics endpoint, move as an
// operator reading a dashboard would expect: logins by outcome, refusals by reason, statements,
// bytes, revocations with their latency, upstream connect time, SCIM requests, active sessions.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATCH_URN, startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';

let stack: Stack;
let bobId: string;

beforeAll(async () => {
  stack = await startStack();
  await stack.provision('alice@corp.com', ['engineering']);
  bobId = await stack.provision('bob@corp.com', ['analysts']);
});
afterAll(async () => {
  await stack?.close();
});

/** Every sample of the exposition text: `name{labels}` -> value. */
async function scrape(): Promise<Map<string, number>> {
  const res = await fetch(`${stack.adminUrl}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

function delta(before: Map<string, number>, after: Map<string, number>, sample: string): number {
  return (after.get(sample) ?? 0) - (before.get(sample) ?? 0);
}


describe('/metrics', () => {
  it('counts sessions, refusals, statements, bytes, revocations, upstream connects and SCIM requests', async () => {
    const before = await scrape();
    for (const name of [
      'rolegate_sessions_active',
      'rolegate_statements_total',
      'rolegate_revocations_total',
      'rolegate_revocation_seconds_count',
      'rolegate_upstream_connect_seconds_count',
    ]) {
      expect(before.has(name), `${name} is exported before anything happened`).toBe(true);
    }

    // One session that runs three statements and leaves.
    const alice = await stack.connect('alice@corp.com');
    expect((await scrape()).get('rolegate_sessions_active')).toBe(1);
    for (const sql of ['select 1', 'select 2', 'select name from items order by id']) await alice.query(sql);
    await alice.end();
    // A tampered token and a person the directory does not know.
    const token = await stack.tokenFor('alice@corp.com');
    const [head, body, sig] = token.split('.') as [string, string, string];
    const tampered = `${head}.${body}.${sig.slice(0, 10)}${sig[10] === 'A' ? 'B' : 'A'}${sig.slice(11)}`;
    await expect(new pg.Client(stack.pgConfig('alice@corp.com', tampered)).connect()).rejects.toMatchObject({ code: '28P01' });
    await expect(stack.connect('nobody@corp.com')).rejects.toMatchObject({ code: '28000' });
    // A session revoked by SCIM: bob leaves the only group that grants him a role.
    const bob = await stack.connect('bob@corp.com');
    const gone = new Promise((resolve) => bob.once('error', resolve));
    const patch = await stack.scim(`/Groups/${stack.groupId('analysts')}`, 'PATCH', {
      schemas: [PATCH_URN],
      Operations: [{ op: 'remove', path: `members[value eq "${bobId}"]` }],
    });
    expect([200, 204]).toContain(patch.status);
    await gone;
    await waitFor(async () => (await scrape()).get('rolegate_sessions_active') === 0, 5_000, 'sessions still active');

    const after = await scrape();
    expect(delta(before, after, 'rolegate_sessions_total{outcome="client_exit"}')).toBe(1);
    expect(delta(before, after, 'rolegate_sessions_total{outcome="revoked"}')).toBe(1);
    expect(delta(before, after, 'rolegate_sessions_total{outcome="denied"}')).toBe(2);
    expect(delta(before, after, 'rolegate_auth_failures_total{reason="signature_invalid"}')).toBe(1);
    expect(delta(before, after, 'rolegate_auth_failures_total{reason="not_provisioned"}')).toBe(1);
    // pg sends none of its own at connect; the three statements are alice's.
    expect(delta(before, after, 'rolegate_statements_total')).toBe(3);
    expect(delta(before, after, 'rolegate_bytes_total{direction="in"}')).toBeGreaterThan(0);
    expect(delta(before, after, 'rolegate_bytes_total{direction="out"}')).toBeGreaterThan(delta(before, after, 'rolegate_bytes_total{direction="in"}'));
    expect(delta(before, after, 'rolegate_revocations_total')).toBe(1);
    expect(delta(before, after, 'rolegate_revocation_seconds_count')).toBe(1);
    expect(delta(before, after, 'rolegate_revocation_seconds_sum')).toBeGreaterThan(0);
    // Alice's least-privileged role is bob's too, and the pool is on by default: bob's login takes
    // the connection alice's goodbye returned, so only alice's login connected upstream.
    expect(delta(before, after, 'rolegate_upstream_connect_seconds_count')).toBe(1);
    expect(delta(before, after, 'rolegate_scim_requests_total{method="PATCH",status="' + patch.status + '"}')).toBe(1);
    expect(after.get('rolegate_sessions_active')).toBe(0);
  });
});
