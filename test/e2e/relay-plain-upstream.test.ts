// A plain-TCP upstream (upstream.tls.mode: disable) is read without its stream layer
// (docs/design.md §2 step 8, "Reads without the stream layer"): large and many-row results arrive
// unchanged, and a pooled connection goes from relay to reset to the next session's relay intact.
import { createHash } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ config: { upstream: { tls: { mode: 'disable' }, pool: { idle: 2, idleTimeout: '30s' } } } });
  await stack.provision('alice@corp.com', ['analysts']);
  await stack.provision('bob@corp.com', ['engineering']);
});
afterAll(async () => {
  await stack?.close();
});

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

async function backend(c: pg.Client): Promise<{ pid: number; ssl: boolean }> {
  const { rows } = await c.query<{ pid: number; ssl: boolean }>('select pid, ssl from pg_stat_ssl where pid = pg_backend_pid()');
  return rows[0] as { pid: number; ssl: boolean };
}

describe('relay over a plain upstream', () => {
  it('a 3 MB value and 100,000 rows arrive unchanged; the backend connection has no TLS', async () => {
    const c = await stack.connect('alice@corp.com');
    try {
      expect((await backend(c)).ssl).toBe(false);
      const n = 100_000;
      const big = await c.query<{ v: string }>(`select string_agg(md5(i::text), '' order by i) as v from generate_series(1, ${n}) i`);
      let expected = '';
      for (let i = 1; i <= n; i++) expected += md5(String(i));
      expect(big.rows[0]?.v.length).toBe(expected.length);
      expect(big.rows[0]?.v === expected).toBe(true);
      const many = await c.query<{ i: number; h: string }>('select i, md5(i::text) as h from generate_series(1, 100000) i order by i');
      expect(many.rows.length).toBe(100_000);
      expect(many.rows.every((r, k) => r.i === k + 1 && r.h === md5(String(k + 1)))).toBe(true);
    } finally {
      await c.end();
    }
  });

  it('a pooled connection is reset and relayed again for the next login, with answers intact', async () => {
    const a = await stack.connect('alice@corp.com');
    const first = await backend(a);
    await a.query("set statement_timeout = '4321ms'");
    await a.end();
    await new Promise((r) => setTimeout(r, 300));
    const b = await stack.connect('bob@corp.com');
    try {
      expect(await backend(b)).toEqual(first);
      expect((await b.query<{ statement_timeout: string }>('show statement_timeout')).rows[0]?.statement_timeout).toBe('0');
      const r = await b.query<{ h: string }>("select md5(string_agg(i::text, ',')) as h from generate_series(1, 50000) i");
      expect(r.rows[0]?.h).toBe(md5(Array.from({ length: 50_000 }, (_, k) => String(k + 1)).join(',')));
    } finally {
      await b.end();
    }
  });
});
