import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { createTestDatabase, pgInfo, superuserQuery } from '../helpers/postgres.js';

describe('test PostgreSQL cluster', () => {
  it('requires scram-sha-256 and serves TLS verified against the run CA', async () => {
    const res = await superuserQuery<{ ssl: boolean; method: string }>(
      "select ssl, current_setting('password_encryption') as method from pg_stat_ssl where pid = pg_backend_pid()",
    );
    expect(res.rows[0]).toEqual({ ssl: true, method: 'scram-sha-256' });
    const wrong = new pg.Client({ host: pgInfo().host, port: pgInfo().port, user: 'postgres', password: 'wrong', database: 'postgres' });
    await expect(wrong.connect()).rejects.toMatchObject({ code: '28P01' });
  });

  it('creates and drops isolated databases', async () => {
    const db = await createTestDatabase('harness');
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query<{ d: string }>('select current_database() as d');
    expect(rows[0]?.d).toBe(db.name);
    await client.end();
    await db.drop();
    const left = await superuserQuery('select 1 from pg_database where datname = $1', [db.name]);
    expect(left.rowCount).toBe(0);
  });
});
