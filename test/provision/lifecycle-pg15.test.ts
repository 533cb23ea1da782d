// Per-user provisioning on PostgreSQL 15 (the suite's cluster): the lifecycle of docs/design.md §7,
// and what 15's CREATEROLE lets the provisioning login do that 16+ no longer does.
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { suiteCluster } from './harness.js';
import { describeLifecycle } from './lifecycle-cases.js';

const fixture = describeLifecycle(async () => suiteCluster(), async () => undefined);

describe('PostgreSQL 15 rules (docs/design.md §7 step 6)', () => {
  it('CREATEROLE alone may grant any non-superuser role, and the creator is no member of what it creates', async () => {
    const fx = fixture();
    expect(fx.versionNum).toBeGreaterThanOrEqual(150000);
    expect(fx.versionNum).toBeLessThan(160000);
    const id = await fx.person(`pg15-${fx.tag}@corp.example`, ['analysts']);
    await fx.engine.idle();
    const role = await fx.roleOf(id);
    const asProv = new pg.Client({ connectionString: fx.cluster.url({ user: fx.prov.name, password: fx.prov.password }) });
    await asProv.connect();
    try {
      // The login holds `retired` without ADMIN OPTION, yet 15 lets CREATEROLE grant it: why
      // rolegate asks for ADMIN OPTION on every configured role anyway and checks nothing else.
      await asProv.query(`GRANT "${fx.roles.retired}" TO "${role}"`);
      await asProv.query(`REVOKE "${fx.roles.retired}" FROM "${role}"`);
      const creator = await asProv.query(
        `SELECT count(*)::int AS n FROM pg_auth_members WHERE roleid = $1::regrole AND member = $2::regrole`,
        [`"${role}"`, fx.prov.name],
      );
      expect(creator.rows[0].n).toBe(0);
    } finally {
      await asProv.end();
    }
  });
});

describe('PostgreSQL 15 drift the login can repair', () => {
  it('revokes a grant a superuser made and takes back CREATEDB', async () => {
    const fx = fixture();
    const id = await fx.person(`pg15-drift-${fx.tag}@corp.example`, ['analysts']);
    await fx.engine.idle();
    const role = await fx.roleOf(id);
    await fx.cluster.su(`GRANT "${fx.roles.writer}" TO "${role}"; ALTER ROLE "${role}" CREATEDB`);
    await fx.engine.reconcile('schedule');
    await fx.engine.idle();
    expect(await fx.inspect(role)).toMatchObject({ memberOf: [fx.roles.reader] });
    expect((await fx.cluster.su(`SELECT rolcreatedb FROM pg_roles WHERE rolname = $1`, [role])).rows[0]).toEqual({ rolcreatedb: false });
    const repaired = fx.events.filter((e) => e.person.id === id && e.action === 'drift_repaired');
    expect(repaired.map((e) => [e.step, e.outcome]).sort()).toEqual([['normalize', 'ok'], ['revoke', 'ok']]);
  });
});
