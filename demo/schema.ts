// The demo database: two tables with a few rows, and two least-privilege roles with real grants
// and random SCRAM passwords that only rolegate's config knows.
import { randomBytes } from 'node:crypto';
import pg from 'pg';

export const DEMO_DATABASE = 'demo';

/** The demo's database roles, least privileged first (the order of the config's `roles`). */
export const DemoRole = { reader: 'demo_reader', writer: 'demo_writer' } as const;
export type DemoRole = (typeof DemoRole)[keyof typeof DemoRole];

export interface DemoSchemaTarget {
  host: string;
  port: number;
  superuserPassword: string;
  /** PEM CA that signed the server's certificate (verify-full). */
  ca: string;
}

const TABLES = `
CREATE TABLE customers (
  id serial PRIMARY KEY,
  name text NOT NULL,
  country text NOT NULL
);
CREATE TABLE orders (
  id serial PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers,
  item text NOT NULL,
  amount numeric(10, 2) NOT NULL,
  ordered_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO customers (name, country) VALUES
  ('Ada Lovelace', 'GB'), ('Grace Hopper', 'US'), ('Edsger Dijkstra', 'NL');
INSERT INTO orders (customer_id, item, amount, ordered_at) VALUES
  (1, 'difference engine parts', 1843.00, now() - interval '9 days'),
  (2, 'compiler manual', 49.90, now() - interval '6 days'),
  (3, 'semaphore kit', 12.50, now() - interval '3 days'),
  (2, 'nanosecond wire', 0.30, now() - interval '1 day'),
  (1, 'punched cards', 7.25, now());
GRANT SELECT ON customers, orders TO ${DemoRole.reader};
GRANT SELECT, INSERT, UPDATE ON customers, orders TO ${DemoRole.writer};
GRANT USAGE ON SEQUENCE customers_id_seq, orders_id_seq TO ${DemoRole.writer};
`;

/** Creates the roles, the `demo` database and its tables; returns each role's password. */
export async function loadDemoSchema(target: DemoSchemaTarget): Promise<Record<DemoRole, string>> {
  const passwords: Record<DemoRole, string> = {
    [DemoRole.reader]: randomBytes(24).toString('base64url'),
    [DemoRole.writer]: randomBytes(24).toString('base64url'),
  };
  const connect = async (database: string): Promise<pg.Client> => {
    const client = new pg.Client({
      host: target.host,
      port: target.port,
      user: 'postgres',
      password: target.superuserPassword,
      database,
      ssl: { ca: target.ca },
    });
    await client.connect();
    return client;
  };
  const admin = await connect('postgres');
  try {
    for (const role of [DemoRole.reader, DemoRole.writer]) {
      // Utility statements take no bind parameters; base64url passwords need no escaping, and the
      // server stores a SCRAM verifier (password_encryption = scram-sha-256), never the text.
      await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${passwords[role]}'`);
    }
    await admin.query(`CREATE DATABASE ${DEMO_DATABASE}`);
    await admin.query(`REVOKE ALL ON DATABASE ${DEMO_DATABASE} FROM PUBLIC`);
    await admin.query(`GRANT CONNECT ON DATABASE ${DEMO_DATABASE} TO ${DemoRole.reader}, ${DemoRole.writer}`);
  } finally {
    await admin.end();
  }
  const db = await connect(DEMO_DATABASE);
  try {
    await db.query(TABLES);
  } finally {
    await db.end();
  }
  return passwords;
}
