// The lifecycle of a person's own role (docs/design.md §7), run against PostgreSQL 15 and 18 alike:
// every step checked where PostgreSQL keeps it: pg_roles/pg_authid (LOGIN, attributes, the SCRAM
// verifier), pg_shdescription (the marker), pg_auth_members (grants) and pg_stat_activity (backends).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareAll } from '../../provision/compare.js';
import { mappedRoleName, personalRoleName } from '../../provision/naming.js';
import { SCRAM_VERIFIER } from '../../provision/scram-verifier.js';
import { TargetDatabase } from '../../provision/target.js';
import { roleGrants, storeDirectory } from '../../server/provisioning.js';
import { closeConnection } from '../upstream/support.js';
import { waitFor } from '../helpers/wait.js';
import { provisionFixture, type Fixture, type TestCluster } from './harness.js';

/** Defines the lifecycle tests on the cluster `open` gives (called once per file). */
export function describeLifecycle(open: () => Promise<TestCluster>, close: (c: TestCluster) => Promise<void>): () => Fixture {
  let cluster: TestCluster;
  let fx: Fixture;
  // userNames are cluster-wide role names: unique per run, however files run in parallel.
  const n = (name: string): string => `${name}-${fx.tag}`;

  beforeAll(async () => {
    cluster = await open();
    fx = await provisionFixture(cluster, { ownedBy: false });
  });
  afterAll(async () => {
    await fx?.close();
    if (cluster !== undefined) await close(cluster);
  });

  const eventsFor = (id: string) => fx.events.filter((e) => e.person.id === id);

  describe('create', () => {
    it('makes a LOGIN INHERIT role marked as rolegate\'s, member of exactly the granted roles, with a SCRAM verifier', async () => {
      const id = await fx.person(n('ana@corp.example'), ['analysts']);
      await fx.engine.idle();
      const role = await fx.roleOf(id);
      expect(role).toBe(n('ana@corp.example'));
      const view = await fx.inspect(role);
      expect(view).toMatchObject({ login: true, inherit: true, superuser: false, createrole: false, comment: `rolegate-managed person=${id}`, memberOf: [fx.roles.reader] });
      // A verifier, never the plain secret, reached the server.
      expect(view?.password).toMatch(SCRAM_VERIFIER);
      const rec = await fx.store.personalRoles.get(id);
      const secret = fx.box.open(id, rec!.sealedSecret);
      expect(view?.password).not.toContain(secret);
      expect(rec!.sealedSecret).not.toContain(secret);
      expect(eventsFor(id).map((e) => [e.action, e.outcome])).toEqual([['create', 'ok'], ['grant', 'ok']]);
    });

    it('logs in as the person, starting as the decided role, and SET ROLE reaches only granted roles', async () => {
      const id = await fx.person(n('ben@corp.example'), ['analysts', 'engineering']);
      await fx.engine.idle();
      const conn = await fx.loginAs(id, { role: fx.roles.reader });
      try {
        expect((await fx.query(conn, 'SELECT session_user, current_user')).rows).toEqual([[n('ben@corp.example'), fx.roles.reader]]);
        // Least privilege at the start: the reader cannot insert.
        expect((await fx.query(conn, 'INSERT INTO items VALUES (1)')).error?.code).toBe('42501');
        expect((await fx.query(conn, `SET ROLE "${fx.roles.writer}"`)).error).toBeUndefined();
        expect((await fx.query(conn, 'INSERT INTO items VALUES (1)')).error).toBeUndefined();
        // RESET ROLE returns to where the login started, not to the person's own role.
        await fx.query(conn, 'RESET ROLE');
        expect((await fx.query(conn, 'SELECT current_user')).rows).toEqual([[fx.roles.reader]]);
        expect((await fx.query(conn, `SET ROLE "${fx.roles.retired}"`)).error?.code).toBe('42501');
        expect((await fx.query(conn, `SET ROLE "${fx.prov.name}"`)).error?.code).toBe('42501');
        expect((await fx.query(conn, 'SET ROLE postgres')).error?.code).toBe('42501');
      } finally {
        await closeConnection(conn);
      }
      // A starting role the groups do not grant is refused by the server itself.
      const analyst = await fx.person(n('cleo@corp.example'), ['analysts']);
      await fx.engine.idle();
      await expect(fx.loginAs(analyst, { role: fx.roles.writer })).rejects.toMatchObject({ sqlstate: '42501' });
    });

    it('reports a role it did not create as a conflict and never touches it', async () => {
      const name = n('dora@corp.example');
      await cluster.su(`CREATE ROLE "${name}" LOGIN CREATEDB`);
      const id = await fx.person(name, ['engineering']);
      await fx.engine.idle();
      expect(await fx.inspect(name)).toMatchObject({ login: true, comment: null, memberOf: [] });
      expect(eventsFor(id).map((e) => [e.action, e.outcome])).toEqual([['create', 'conflict']]);
      expect(eventsFor(id)[0]?.detail).toContain('was not created by rolegate');
      const login = await fx.engine.loginFor(id, AbortSignal.timeout(5_000));
      expect(login).toEqual({ kind: 'unavailable', reason: 'conflict' });
      // Said once, not at every reconciliation.
      await fx.engine.reconcile('schedule');
      await fx.engine.idle();
      expect(eventsFor(id)).toHaveLength(1);
      await cluster.su(`DROP ROLE "${name}"`);
    });
  });

  describe('group changes', () => {
    it('grants and revokes as memberships change, and a rename follows the userName', async () => {
      const id = await fx.person(n('eve@corp.example'), ['analysts']);
      await fx.engine.idle();
      await fx.setGroups(id, ['analysts', 'engineering']);
      await fx.engine.idle();
      expect((await fx.inspect(n('eve@corp.example')))?.memberOf).toEqual([fx.roles.reader, fx.roles.writer].sort());
      await fx.setGroups(id, []);
      await fx.engine.idle();
      expect((await fx.inspect(n('eve@corp.example')))?.memberOf).toEqual([]);
      await fx.rename(id, n('eve.new@corp.example'));
      await fx.engine.idle();
      expect(await fx.inspect(n('eve@corp.example'))).toBeUndefined();
      expect(await fx.inspect(n('eve.new@corp.example'))).toMatchObject({ login: true, comment: `rolegate-managed person=${id}` });
      expect(await fx.roleOf(id)).toBe(n('eve.new@corp.example'));
      const conn = await fx.loginAs(id);
      await closeConnection(conn);
    });
  });

  describe('deactivation and reactivation', () => {
    it('NOLOGIN, grants revoked and backends ended; reactivation restores LOGIN and grants', async () => {
      const id = await fx.person(n('finn@corp.example'), ['analysts', 'engineering']);
      await fx.engine.idle();
      const role = await fx.roleOf(id);
      const open = await fx.loginAs(id, { role: fx.roles.reader });
      const ended = new Promise<void>((resolve) => open.socket.once('close', () => resolve()));
      open.socket.on('error', () => undefined);
      open.socket.resume();
      expect((await fx.inspect(role))?.backends).toBe(1);

      const t0 = performance.now();
      await fx.setActive(id, false);
      await ended;
      // The contract's promise, with the machine's noise in mind: well within a second.
      expect(performance.now() - t0).toBeLessThan(1_000);
      await fx.engine.idle();
      expect(await fx.inspect(role)).toMatchObject({ login: false, memberOf: [], backends: 0 });
      await expect(fx.loginAs(id)).rejects.toMatchObject({ sqlstate: '28000' });
      expect(eventsFor(id).slice(-4).map((e) => e.action)).toEqual(['disable', 'revoke', 'revoke', 'terminate']);

      await fx.setActive(id, true);
      await fx.engine.idle();
      expect(await fx.inspect(role)).toMatchObject({ login: true, memberOf: [fx.roles.reader, fx.roles.writer].sort() });
      await closeConnection(await fx.loginAs(id, { role: fx.roles.writer }));
    });
  });

  describe('delete', () => {
    it('drops a role that owns nothing', async () => {
      const id = await fx.person(n('gus@corp.example'), ['analysts']);
      await fx.engine.idle();
      const role = await fx.roleOf(id);
      await fx.remove(id);
      await fx.engine.idle();
      expect(await fx.inspect(role)).toBeUndefined();
      expect(await fx.store.personalRoles.get(id)).toBeUndefined();
      expect(eventsFor(id).slice(-3).map((e) => [e.action, e.outcome])).toEqual([['disable', 'ok'], ['revoke', 'ok'], ['drop', 'ok']]);
    });

    it('without ownedBy keeps a role that owns objects disabled and says why, and drops it once it owns nothing', async () => {
      const id = await fx.person(n('hal@corp.example'), ['engineering']);
      await fx.engine.idle();
      const role = await fx.roleOf(id);
      const conn = await fx.loginAs(id);
      expect((await fx.query(conn, 'CREATE TABLE hal_notes (x int)')).error).toBeUndefined();
      await closeConnection(conn);
      await fx.remove(id);
      await fx.engine.idle();
      expect(await fx.inspect(role)).toMatchObject({ login: false, memberOf: [] });
      const last = eventsFor(id).at(-1);
      expect(last).toMatchObject({ action: 'drop', outcome: 'retained' });
      expect(last?.detail).toContain(`database "${fx.database}"`);
      expect(last?.detail).toContain('provisioning.ownedBy is not set');
      await cluster.su('DROP TABLE hal_notes', [], fx.database);
      await fx.engine.reconcile('schedule');
      await fx.engine.idle();
      expect(await fx.inspect(role)).toBeUndefined();
    });
  });

  describe('names', () => {
    const hostile = (): string[] => [
      n(`o'brien"; DROP ROLE "${fx.roles.reader}"; --`),
      n('back\\slash\\'),
      n('semi;colon and spaces'),
      n('аlice'), // Cyrillic а: a look-alike of the next one, and a different role
      n('alice'),
      n('Zoë Ünal'),
      n('pg_admin'),
      `PG_${n('shout')}`,
      n('nul\u0000inside'),
      n('tab\tinside'),
      `${'x'.repeat(300)}-${fx.tag}`,
    ];

    it('quotes every identifier: hostile userNames get their own roles (mapped when unusable) and can log in', async () => {
      const names = hostile();
      const ids = await Promise.all(names.map((name) => fx.person(name, ['analysts'])));
      await fx.engine.idle();
      for (const [i, name] of names.entries()) {
        const id = ids[i]!;
        const role = await fx.roleOf(id);
        expect(role).toBe(personalRoleName(name, 'rg_'));
        expect(Buffer.byteLength(role)).toBeLessThanOrEqual(63);
        expect(role.startsWith('pg_') || role.startsWith('PG_')).toBe(false);
        expect(await fx.inspect(role), name).toMatchObject({ login: true, comment: `rolegate-managed person=${id}`, memberOf: [fx.roles.reader] });
        const conn = await fx.loginAs(id);
        expect((await fx.query(conn, 'SELECT session_user')).rows).toEqual([[role]]);
        await closeConnection(conn);
      }
      // Nothing the names said was run: the configured role is still there, and look-alikes are distinct.
      expect(await fx.inspect(fx.roles.reader)).toBeDefined();
      expect(await fx.roleOf(ids[3]!)).not.toBe(await fx.roleOf(ids[4]!));
      expect(await fx.roleOf(ids[6]!)).toBe(mappedRoleName(n('pg_admin'), 'rg_'));
    });
  });

  describe('drift', () => {
    it('repairs grants made by hand, a dropped role, changed attributes and a changed secret, and audits each', async () => {
      const id = await fx.person(n('ida@corp.example'), ['analysts']);
      const other = await fx.person(n('jon@corp.example'), ['analysts']);
      await fx.engine.idle();
      const role = await fx.roleOf(id);
      const otherRole = await fx.roleOf(other);
      // By hand, with the provisioning login (16+ lets it revoke only what it or its members granted:
      // a superuser's grant is a case of its own, see the version files).
      await fx.asProvisioner(`GRANT "${fx.roles.writer}" TO "${role}"`);
      await cluster.su(`ALTER ROLE "${role}" CONNECTION LIMIT 3`);
      await cluster.su(`DROP ROLE "${otherRole}"`);

      const directory = storeDirectory(fx.store, fx.index);
      const target = new TargetDatabase(cluster.url({ user: fx.prov.name, password: fx.prov.password, database: fx.database }), { onBackgroundError: () => undefined });
      const rules = [{ role: fx.roles.reader, groups: ['analysts', 'engineering'], databases: ['*'] }, { role: fx.roles.writer, groups: ['engineering'], databases: ['*'] }];
      const before = await compareAll({ target, directory, records: fx.store.personalRoles, grants: roleGrants(() => rules), rolePrefix: 'rg_' });
      const lines = before.differences.flatMap((d) => d.lines);
      expect(lines).toContain(`extra grant: "${role}" is a member of "${fx.roles.writer}", which the person's groups do not grant`);
      expect(lines).toContain(`missing role "${otherRole}"`);
      expect(lines).toContain(`role "${role}" has attributes rolegate does not give: set CONNECTION LIMIT -1`);

      const mark = fx.events.length;
      await fx.engine.reconcile('schedule');
      await fx.engine.idle();
      expect(await fx.inspect(role)).toMatchObject({ memberOf: [fx.roles.reader] });
      expect(await fx.inspect(otherRole)).toMatchObject({ login: true, memberOf: [fx.roles.reader] });
      const repaired = fx.events.slice(mark);
      expect(repaired.every((e) => e.action === 'drift_repaired' && e.outcome === 'ok')).toBe(true);
      expect(repaired.map((e) => e.step).sort()).toEqual(['create', 'grant', 'normalize', 'revoke']);
      const after = await compareAll({ target, directory, records: fx.store.personalRoles, grants: roleGrants(() => rules), rolePrefix: 'rg_' });
      expect(after.differences.filter((d) => d.personId === id || d.personId === other)).toEqual([]);

      // A secret changed by hand: the login is refused, the provisioner sets it again.
      await cluster.su(`ALTER ROLE "${role}" PASSWORD 'changed-by-hand'`);
      await expect(fx.loginAs(id)).rejects.toMatchObject({ code: 'UPSTREAM_AUTH' });
      fx.engine.upstreamRefused(id, 'secret');
      await fx.engine.idle();
      await closeConnection(await fx.loginAs(id));
      expect(fx.events.at(-1)).toMatchObject({ action: 'drift_repaired', step: 'password', outcome: 'ok' });
      await target.close();
    });
  });

  describe('ordering', () => {
    it('concurrent changes for one person end in the state the directory holds last', async () => {
      const id = await fx.person(n('kim@corp.example'), []);
      const sets = [['analysts'], ['engineering'], [], ['analysts', 'engineering'], ['analysts'], ['engineering'], ['analysts']];
      await Promise.all(sets.map((g) => fx.setGroups(id, g)));
      await fx.setGroups(id, ['engineering']);
      await fx.engine.idle();
      await waitFor(async () => (await fx.inspect(await fx.roleOf(id)))?.memberOf.join() === [fx.roles.reader, fx.roles.writer].sort().join(), 5_000);
      expect(eventsFor(id).filter((e) => e.outcome !== 'ok')).toEqual([]);
    });
  });

  return () => fx;
}
