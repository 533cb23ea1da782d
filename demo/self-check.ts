// Before the demo prints what each person can do, it checks it through the proxy with a real client,
// so the printout cannot promise what the running system does not do.
import pg from 'pg';
import { DEMO_DATABASE } from './schema.js';

export interface CheckTarget {
  port: number;
  /** PEM CA that signed the proxy's certificate. */
  ca: string;
}

export interface Expectation {
  loginUser: string;
  token: string;
  /** The role `current_user` must be. */
  role: string;
  /** Whether INSERT into orders must succeed (rolled back) or be refused with 42501. */
  canInsert: boolean;
}

const INSERT = `INSERT INTO orders (customer_id, item, amount) VALUES (1, 'rolegate demo self-check', 1)`;
// SQLSTATE insufficient_privilege.
const PERMISSION_DENIED = '42501';

/** Logs in as each person through the proxy (TLS verify-full) and checks role and INSERT rights. */
export async function checkThroughProxy(target: CheckTarget, people: readonly Expectation[]): Promise<void> {
  await Promise.all(people.map((p) => checkOne(target, p)));
}

async function checkOne(target: CheckTarget, p: Expectation): Promise<void> {
  const client = new pg.Client({
    host: 'localhost',
    port: target.port,
    user: p.loginUser,
    password: p.token,
    database: DEMO_DATABASE,
    ssl: { ca: target.ca, servername: 'localhost' },
    connectionTimeoutMillis: 10_000,
    application_name: 'rolegate demo self-check',
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<{ role: string }>('SELECT current_user AS role');
    if (rows[0]?.role !== p.role) throw new Error(`${p.loginUser} logged in as ${rows[0]?.role ?? '?'}, expected ${p.role}`);
    await client.query('BEGIN');
    const inserted = await client.query(INSERT).then(() => true, (err: { code?: string }) => {
      if (err.code !== PERMISSION_DENIED) throw err;
      return false;
    });
    await client.query('ROLLBACK');
    if (inserted !== p.canInsert) throw new Error(`${p.loginUser} ${inserted ? 'could' : 'could not'} INSERT, expected the opposite`);
  } catch (err) {
    throw new Error(`self-check through the proxy failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  } finally {
    await client.end().catch(() => undefined);
  }
}
