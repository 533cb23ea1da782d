// Defect: a PostgreSQL store connection that died while checked out crashed the whole process. pg-pool
// listens for 'error' only on idle clients; a checked-out client whose server goes away emits 'error'
// when its socket ends, and with nobody listening Node exits. Seen as instance A vanishing mid-burst
// when the store restarted (test/cluster/store-outage.test.ts). Now the write fails alone (the SCIM
// layer answers 5xx, the identity provider retries) and the next write runs on a fresh connection.
import pg from 'pg';
import { afterEach, expect, it } from 'vitest';
import { createTestDatabase, pgUrl, superuserQuery, type TestDatabase } from '../helpers/postgres.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { waitFor } from '../helpers/wait.js';
import { builtOpenStoreUrl, exitOf, onLines, startNode, writeScript } from './child.js';

/** The store's write lock (scim/store/postgres.ts): holding it makes the child's write wait on the server. */
const WRITE_LOCK_KEY = '8246126309927617638';

let dir: TempDir | undefined;
let db: TestDatabase | undefined;
let holder: pg.Client | undefined;
afterEach(async () => {
  await holder?.end().catch(() => undefined);
  await db?.drop();
  await dir?.cleanup();
  [holder, db, dir] = [undefined, undefined, undefined];
});

it('a store connection terminated while a write holds it fails that write instead of crashing the process', async () => {
  dir = await tempDir('rolegate-connloss-');
  db = await createTestDatabase('connloss');
  holder = new pg.Client({ connectionString: pgUrl({ database: db.name }) });
  await holder.connect();
  const script = await writeScript(
    dir.path,
    'write.mjs',
    `import { openStore } from ${JSON.stringify(builtOpenStoreUrl())};
const store = await openStore(process.argv[2]);
process.stdout.write('open\\n');
const write = (name) => store.createUser({ userName: name, active: true });
await write('blocked').then(() => process.stdout.write('blocked write ok\\n'), (err) => process.stdout.write('blocked write failed ' + (err?.status ?? '') + '\\n'));
await write('after').then(() => process.stdout.write('next write ok\\n'));
await store.close();
`,
  );
  // The store's first write waits on this lock, holding a checked-out connection, until it is killed.
  await holder.query(`BEGIN; SELECT pg_advisory_xact_lock(${WRITE_LOCK_KEY})`);
  const child = startNode(script, [db.url]);
  const exited = exitOf(child);
  const lines: string[] = [];
  onLines(child, (l) => lines.push(l));
  let victim: number | undefined;
  // Looked up from another session: within the holder's transaction pg_stat_activity is one snapshot.
  await waitFor(async () => {
    const { rows } = await superuserQuery<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = 'rolegate-directory' AND wait_event_type = 'Lock'`,
      [db!.name],
    );
    victim = rows[0]?.pid;
    return victim !== undefined;
  }, 20_000, () => `the store write never waited on the held write lock (the child said: ${lines.join(' | ')})`);
  await holder.query('SELECT pg_terminate_backend($1)', [victim]);
  await holder.query('COMMIT');

  const exit = await exited;
  expect(exit.stderr).not.toMatch(/Unhandled 'error' event/);
  expect({ code: exit.code, lines }).toEqual({ code: 0, lines: ['open', 'blocked write failed 503', 'next write ok'] });
  const { rows } = await holder.query<{ user_name: string }>('SELECT user_name FROM rg_users ORDER BY seq');
  expect(rows.map((r) => r.user_name)).toEqual(['after']);
}, 60_000);
