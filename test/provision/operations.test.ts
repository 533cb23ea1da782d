// Per-user provisioning in operation (docs/design.md §7): objects handed to provisioning.ownedBy on
// delete, the provisioning login's privileges named one by one, two instances on one store, and a
// database that goes away while SCIM changes commit.
import { randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/log.js';
import { ProvisioningEngine } from '../../provision/engine.js';
import { checkPrivileges } from '../../provision/privileges.js';
import { SecretBox } from '../../provision/secret-box.js';
import { LOCK_CLASS, TargetDatabase, personKey } from '../../provision/target.js';
import { DirectoryIndex } from '../../scim/directory-index.js';
import { openStore } from '../../scim/store/open.js';
import { roleGrants, storeDirectory } from '../../server/provisioning.js';
import { waitFor } from '../helpers/wait.js';
import { closeConnection } from '../upstream/support.js';
import { provisionFixture, suiteCluster, type Fixture, type TestCluster } from './harness.js';

const cluster: TestCluster = suiteCluster();

describe('delete with provisioning.ownedBy', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await provisionFixture(cluster, { ownedBy: true });
  });
  afterAll(async () => fx?.close());

  it('hands the objects to ownedBy (REASSIGN OWNED, DROP OWNED) and drops the role', async () => {
    const id = await fx.person(`owner-${fx.tag}@corp.example`, ['engineering']);
    await fx.engine.idle();
    const role = await fx.roleOf(id);
    const conn = await fx.loginAs(id);
    // Created as the person's own role (SET ROLE NONE leaves the starting role).
    expect((await fx.query(conn, 'SET ROLE NONE; CREATE TABLE owned_notes (x int)')).error).toBeUndefined();
    await closeConnection(conn);
    await fx.remove(id);
    await fx.engine.idle();
    expect(await fx.inspect(role)).toBeUndefined();
    const owner = await cluster.su<{ owner: string }>(`SELECT tableowner AS owner FROM pg_tables WHERE tablename = 'owned_notes'`, [], fx.database);
    expect(owner.rows).toEqual([{ owner: fx.roles.retired }]);
    // engineering grants both configured roles.
    const mine = fx.events.filter((e) => e.person.id === id).slice(-5);
    expect(mine.map((e) => [e.action, e.outcome])).toEqual([['disable', 'ok'], ['revoke', 'ok'], ['revoke', 'ok'], ['reassign', 'ok'], ['drop', 'ok']]);
    expect(mine[3]?.detail).toBe(`objects of "${role}" in database "${fx.database}" handed to "${fx.roles.retired}"`);
  });
});

describe('provisioning.reconcileEvery', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await provisionFixture(cluster, { reconcileEveryMs: 1_000 });
  });
  afterAll(async () => fx?.close());

  it('repairs drift on its own, and audits it', async () => {
    const id = await fx.person(`timer-${fx.tag}@corp.example`, ['analysts']);
    await fx.engine.idle();
    const role = await fx.roleOf(id);
    await cluster.su(`GRANT "${fx.roles.writer}" TO "${role}"`);
    await waitFor(async () => (await fx.inspect(role))?.memberOf.join() === fx.roles.reader, 5_000, 'repaired by the timer');
    await waitFor(() => fx.events.some((e) => e.person.id === id && e.action === 'drift_repaired' && e.step === 'revoke'), 2_000, 'audited');
  });
});

describe('a store that lost its records', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await provisionFixture(cluster);
  });
  afterAll(async () => fx?.close());

  it('drops nothing: a marked role nobody is on record for is left alone', async () => {
    const id = await fx.person(`kept-${fx.tag}@corp.example`, ['analysts']);
    await fx.engine.idle();
    const role = await fx.roleOf(id);
    // Another provisioner on an empty directory store, against the same database.
    const empty = await openStore('sqlite::memory:');
    const index = await DirectoryIndex.load(empty);
    const events: unknown[] = [];
    const engine = new ProvisioningEngine({
      target: new TargetDatabase(cluster.url({ user: fx.prov.name, password: fx.prov.password, database: fx.database }), { onBackgroundError: () => undefined }),
      directory: storeDirectory(empty, index),
      records: empty.personalRoles,
      grants: roleGrants(() => [{ role: fx.roles.reader, groups: ['analysts'], databases: ['*'] }]),
      box: new SecretBox(randomBytes(32)),
      settings: { rolePrefix: 'rg_', ownedBy: undefined, databases: [fx.database], reconcileEveryMs: 3_600_000 },
      audit: (e) => events.push(e),
      logger: createLogger('silent'),
    });
    try {
      await engine.start();
      const comparison = await engine.reconcile('schedule');
      await engine.idle();
      expect(comparison?.differences.find((d) => d.personId === id)).toBeUndefined();
      expect(events).toEqual([]);
      expect(await fx.inspect(role)).toMatchObject({ login: true, memberOf: [fx.roles.reader] });
    } finally {
      await engine.close();
      index.close();
      await empty.close();
    }
  });
});

describe('a secret that no longer opens (provisioning.secretKey replaced)', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await provisionFixture(cluster, { sharedStore: true });
  });
  afterAll(async () => fx?.close());

  it('is replaced by a new one, set as the role\'s verifier, and the person logs in again', async () => {
    const id = await fx.person(`rekey-${fx.tag}@corp.example`, ['analysts']);
    await fx.engine.idle();
    const role = await fx.roleOf(id);
    const before = (await fx.inspect(role))?.password;
    // The instance restarted with another key: what the store holds no longer opens.
    const key = new SecretBox(randomBytes(32));
    const restarted = await fx.secondEngine(key);
    try {
      await restarted.engine.idle();
      expect(await restarted.engine.loginFor(id, AbortSignal.timeout(5_000))).toEqual({ kind: 'unavailable', reason: 'failed' });
      await restarted.engine.idle();
      const login = await restarted.engine.loginFor(id, AbortSignal.timeout(5_000));
      expect(login.kind).toBe('ready');
      expect((await fx.inspect(role))?.password).not.toBe(before);
      const rec = await fx.store.personalRoles.get(id);
      expect(login).toEqual({ kind: 'ready', role, password: key.open(id, rec!.sealedSecret) });
      expect(restarted.events.at(-1)).toMatchObject({ action: 'drift_repaired', step: 'password', outcome: 'ok' });
    } finally {
      await restarted.close();
    }
  });
});

describe('the provisioning login', () => {
  const tag = `q${randomBytes(3).toString('hex')}`;
  const made: string[] = [];
  const role = async (sql: string, name: string): Promise<string> => {
    made.push(name);
    await cluster.su(sql.replace('$NAME', `"${name}"`));
    return name;
  };
  const target = (user: string) => new TargetDatabase(cluster.url({ user, password: 'pw' }), { onBackgroundError: () => undefined });
  afterAll(async () => {
    for (const r of made.reverse()) await cluster.su(`DROP ROLE IF EXISTS "${r}"`);
  });

  it('names each missing privilege, and SUPERUSER only earns a warning', async () => {
    const reader = await role('CREATE ROLE $NAME NOLOGIN', `${tag}_reader`);
    const owner = await role('CREATE ROLE $NAME NOLOGIN', `${tag}_owner`);
    const bare = await role(`CREATE ROLE $NAME LOGIN PASSWORD 'pw'`, `${tag}_bare`);
    const full = await role(`CREATE ROLE $NAME LOGIN CREATEROLE PASSWORD 'pw'`, `${tag}_full`);
    await cluster.su(`GRANT "${reader}" TO "${full}" WITH ADMIN OPTION; GRANT pg_signal_backend, "${owner}" TO "${full}"`);
    const root = await role(`CREATE ROLE $NAME LOGIN SUPERUSER PASSWORD 'pw'`, `${tag}_root`);
    const needs = { roles: [reader, `${tag}_missing`], ownedBy: owner, databases: ['postgres', `${tag}_nodb`] };

    const b = target(bare);
    expect((await checkPrivileges(b, needs)).missing).toEqual([
      'provisioning login lacks CREATEROLE',
      'provisioning login lacks membership in pg_signal_backend',
      `provisioning login lacks ADMIN OPTION on role "${reader}"`,
      `configured role "${tag}_missing" does not exist in the database`,
      `provisioning login lacks membership in "${owner}" (provisioning.ownedBy)`,
      expect.stringMatching(new RegExp(`^provisioning login cannot connect to database "${tag}_nodb" \\(.*does not exist\\)$`)),
    ]);
    await b.close();
    const f = target(full);
    expect(await checkPrivileges(f, { roles: [reader], ownedBy: owner, databases: ['postgres'] })).toEqual({ missing: [], warnings: [] });
    await f.close();
    const r = target(root);
    const rootReport = await checkPrivileges(r, { roles: [reader], databases: [] });
    expect(rootReport.missing).toEqual([]);
    expect(rootReport.warnings).toEqual([`provisioning login "${root}" is a superuser; it needs only CREATEROLE and the grants in docs/design.md §7`]);
    await r.close();
  });

  it('a start without the privileges is refused with each one named', async () => {
    const reader = await role('CREATE ROLE $NAME NOLOGIN', `${tag}_r2`);
    const bare = await role(`CREATE ROLE $NAME LOGIN PASSWORD 'pw'`, `${tag}_bare2`);
    const s = await openStore('sqlite::memory:');
    const index = await DirectoryIndex.load(s);
    const engine = new ProvisioningEngine({
      target: target(bare),
      directory: storeDirectory(s, index),
      records: s.personalRoles,
      grants: roleGrants(() => [{ role: reader, groups: ['g'], databases: ['*'] }]),
      box: new SecretBox(randomBytes(32)),
      settings: { rolePrefix: '', ownedBy: undefined, databases: [], reconcileEveryMs: 60_000 },
      audit: () => undefined,
      logger: createLogger('silent'),
    });
    await expect(engine.start()).rejects.toMatchObject({
      code: 'PROVISION_PRIVILEGES',
      message: `provisioning login lacks CREATEROLE; provisioning login lacks membership in pg_signal_backend; provisioning login lacks ADMIN OPTION on role "${reader}"`,
    });
    await engine.close();
    index.close();
    await s.close();
  });
});

describe('two instances on one store', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await provisionFixture(cluster, { sharedStore: true });
  });
  afterAll(async () => fx?.close());

  it('never run one person\'s change twice: one create and one drop each, no failure', async () => {
    const second = await fx.secondEngine();
    // A third instance makes the changes: neither provisioner hears of them (no cross-instance
    // fan-out here), so both find them in the same full reconciliation and race for each person;
    // only the advisory lock in the database keeps their steps apart.
    const other = await openStore(fx.storeUrl);
    try {
      const group = await other.createGroup({ displayName: `twins-${fx.tag}` }, []);
      const ids: string[] = [];
      for (let i = 0; i < 12; i++) ids.push((await other.createUser({ userName: `twin${i}-${fx.tag}@corp.example`, active: true })).id);
      await other.updateGroup(group.id, (g) => ({ attributes: { ...g.attributes, displayName: 'analysts' }, members: ids.map((value) => ({ value })) }));

      await Promise.all([fx.engine.reconcile('schedule'), second.engine.reconcile('schedule')]);
      await Promise.all([fx.engine.idle(), second.engine.idle()]);
      const all = () => [...fx.events, ...second.events].filter((e) => ids.includes(e.person.id));
      for (const id of ids) {
        const mine = all().filter((e) => e.person.id === id);
        expect(mine.filter((e) => e.step === 'create')).toHaveLength(1);
        expect(await fx.inspect(await fx.roleOf(id))).toMatchObject({ login: true, memberOf: [fx.roles.reader] });
        // Both instances hand out the same secret: one claim won.
        expect(await second.engine.loginFor(id, AbortSignal.timeout(5_000))).toMatchObject({ kind: 'ready' });
        expect(await fx.engine.loginFor(id, AbortSignal.timeout(5_000))).toMatchObject({ kind: 'ready' });
      }
      for (const id of ids.slice(0, 6)) await other.deleteUser(id);
      await Promise.all([fx.engine.reconcile('schedule'), second.engine.reconcile('schedule')]);
      await Promise.all([fx.engine.idle(), second.engine.idle()]);
      for (const id of ids.slice(0, 6)) {
        expect(all().filter((e) => e.person.id === id && e.step === 'drop')).toHaveLength(1);
        expect(await fx.store.personalRoles.get(id)).toBeUndefined();
      }
      expect(all().filter((e) => e.outcome !== 'ok')).toEqual([]);
    } finally {
      await other.close();
      await second.close();
    }
  });
});

describe('a pass and another instance', () => {
  let fx: Fixture;
  beforeAll(async () => {
    fx = await provisionFixture(cluster, { sharedStore: true });
  });
  afterAll(async () => fx?.close());

  it('a pass reads the person under their lock: a deactivation another instance applied meanwhile is not undone', async () => {
    const id = await fx.person(`stale-${fx.tag}@corp.example`, ['analysts']);
    await fx.engine.idle();
    const role = await fx.roleOf(id);
    // Another instance holds the person's lock.
    const other = new pg.Client({ connectionString: cluster.url({ user: fx.prov.name, password: fx.prov.password, database: fx.database }) });
    await other.connect();
    try {
      await other.query('SELECT pg_advisory_lock($1::int4, $2::int4)', [LOCK_CLASS, personKey(id)]);
      // A change this instance hears: its pass is due and waits for the lock.
      await fx.setGroups(id, ['analysts', 'engineering']);
      await new Promise((r) => setTimeout(r, 300));
      // Meanwhile the other instance deactivates the person (a write this one does not hear) and applies it.
      const otherStore = await openStore(fx.storeUrl);
      await otherStore.updateUser(id, (u) => ({ ...u.attributes, active: false }));
      await otherStore.close();
      await other.query(`ALTER ROLE "${role}" NOLOGIN; REVOKE "${fx.roles.reader}" FROM "${role}"`);
      await other.query('SELECT pg_advisory_unlock($1::int4, $2::int4)', [LOCK_CLASS, personKey(id)]);
    } finally {
      await other.end();
    }
    await fx.engine.idle();
    expect(await fx.inspect(role)).toMatchObject({ login: false, memberOf: [] });
    expect(fx.events.filter((e) => e.person.id === id && (e.action === 'enable' || e.action === 'grant')).length).toBe(1);
  });
});

describe('a database that is down when a change commits', () => {
  let fx: Fixture;
  let hop: Cuttable;
  beforeAll(async () => {
    hop = await cuttableHop(cluster.port);
    fx = await provisionFixture(cluster, {
      adminUrl: (prov) => cluster.url({ user: prov.name, password: prov.password }).replace(`:${cluster.port}/`, `:${hop.port}/`),
    });
  });
  afterAll(async () => {
    await fx?.close();
    await hop?.close();
  });

  it('is caught up when it returns; meanwhile logins and /readyz say it is unreachable', async () => {
    hop.cut();
    const id = await fx.person(`outage-${fx.tag}@corp.example`, ['analysts']);
    await waitFor(async () => (await fx.engine.ready().then(() => 'ok', (e: Error) => e.message)) === 'provisioning database unreachable', 10_000);
    expect(await fx.engine.loginFor(id, AbortSignal.timeout(5_000))).toEqual({ kind: 'unavailable', reason: 'unreachable' });
    await fx.setGroups(id, ['analysts', 'engineering']);
    // Nothing is claimed without the database: a pass begins with the person's lock there.
    expect(await fx.store.personalRoles.get(id)).toBeUndefined();
    expect(await fx.inspect(`outage-${fx.tag}@corp.example`)).toBeUndefined();

    hop.restore();
    await waitFor(async () => (await fx.inspect(`outage-${fx.tag}@corp.example`))?.memberOf.length === 2, 15_000, 'caught up after the outage');
    await fx.engine.idle();
    await expect(fx.engine.ready()).resolves.toBeUndefined();
    expect((await fx.engine.loginFor(id, AbortSignal.timeout(5_000))).kind).toBe('ready');
    expect(fx.events.filter((e) => e.person.id === id && e.outcome !== 'ok')).toEqual([]);
  });
});

interface Cuttable {
  readonly port: number;
  /** Drops every connection and refuses new ones (the database is gone). */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

async function cuttableHop(targetPort: number): Promise<Cuttable> {
  const sockets = new Set<Socket>();
  let down = false;
  const server = createServer((client) => {
    if (down) return void client.destroy();
    const upstream = connect({ host: '127.0.0.1', port: targetPort });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    cut() {
      down = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      down = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
