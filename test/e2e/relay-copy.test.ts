// COPY through the relay (docs/design.md §2 step 8): psql's COPY FROM STDIN / TO STDOUT and postgres.js's
// copy streams, with the data checked byte for byte on the way in and out.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;
let ca: string;

beforeAll(async () => {
  stack = await startStack();
  ca = readFileSync(stack.caCertPath, 'utf8');
  await stack.provision('bob@corp.com', ['engineering']);
  const bob = new pg.Client(stack.pgConfig(stack.roles.writer, await stack.tokenFor('bob@corp.com')));
  await bob.connect();
  await bob.query('create table copied (id int primary key, label text, payload bytea)');
  await bob.end();
});
afterAll(async () => {
  await stack?.close();
});

/** Rows in COPY text format: tabs, backslashes, non-ASCII and NULL escapes included. */
function copyRows(from: number, count: number): string {
  let out = '';
  for (let i = from; i < from + count; i++) {
    const label = i % 97 === 0 ? '\\N' : `row ${i}\\twith tab, ünïcode ✓, backslash \\\\`;
    out += `${i}\t${label}\t\\\\x${(i % 65536).toString(16).padStart(4, '0')}\n`;
  }
  return out;
}

interface PsqlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** psql as the writer, verify-full against the run's CA, with `stdin` fed as the script. */
async function psql(args: string[], stdin?: string): Promise<PsqlResult> {
  const token = await stack.tokenFor('bob@corp.com');
  const conninfo = `host=localhost port=${stack.proxyPort} dbname=${stack.db.name} user=${stack.roles.writer} sslmode=verify-full sslrootcert=${stack.caCertPath}`;
  const child = spawn('psql', [conninfo, '-X', '-v', 'ON_ERROR_STOP=1', ...args], { env: { ...process.env, PGPASSWORD: token } });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  if (stdin !== undefined) child.stdin.end(stdin);
  else child.stdin.end();
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stdout, stderr };
}

function sqlFor(token: string): postgres.Sql {
  return postgres({
    host: 'localhost',
    port: stack.proxyPort,
    user: stack.roles.writer,
    pass: token,
    database: stack.db.name,
    ssl: { ca, servername: 'localhost' },
    max: 1,
    onnotice: () => undefined,
  });
}

describe('COPY with psql', () => {
  it('COPY FROM STDIN in the script (60,000 rows, about 4 MB), then COPY TO STDOUT gives the same bytes back', async () => {
    const rows = copyRows(1, 60_000);
    const load = await psql(['-q'], `truncate copied;\nCOPY copied FROM STDIN;\n${rows}\\.\nselect count(*) from copied;\n`);
    expect(load.stderr).toBe('');
    expect(load.code).toBe(0);
    expect(load.stdout).toContain('60000');

    const dump = await psql(['-c', 'COPY (select * from copied order by id) TO STDOUT']);
    expect(dump.code).toBe(0);
    expect(dump.stdout.length).toBe(rows.length);
    expect(createHash('sha256').update(dump.stdout).digest('hex')).toBe(createHash('sha256').update(rows).digest('hex'));
  });

  it('\\copy from a file and to a file (CSV), and a COPY error rolls back only that COPY', async () => {
    const csvIn = join(stack.dir, 'in.csv');
    const csvOut = join(stack.dir, 'out.csv');
    const lines = Array.from({ length: 5_000 }, (_, i) => `${100_000 + i},"quoted, ""label"" ${i}",\\x${(i % 256).toString(16).padStart(2, '0')}`);
    await writeFile(csvIn, lines.join('\n') + '\n');
    const r = await psql(['-c', `\\copy copied from '${csvIn}' with (format csv)`, '-c', `\\copy (select * from copied where id >= 100000 order by id) to '${csvOut}' with (format csv)`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(readFileSync(csvOut, 'utf8')).toBe(lines.join('\n') + '\n');

    // A duplicate key aborts the COPY (23505); the relay stays in step and the session goes on.
    const dup = await psql(['-q', '-v', 'ON_ERROR_STOP=0'], `COPY copied FROM STDIN;\n200000\tnew\t\\\\x00\n1\tdup\t\\\\x00\n\\.\nselect 'after:' || count(*) from copied where id = 200000;\n`);
    expect(dup.stderr).toMatch(/duplicate key value/);
    expect(dup.stdout).toContain('after:0');
  });
});

describe('COPY with postgres.js', () => {
  it('writable() streams 20,000 rows in; readable() streams them out unchanged', async () => {
    const sql = sqlFor(await stack.tokenFor('bob@corp.com'));
    await sql`delete from copied where id between 500000 and 599999`;
    const rows = copyRows(500_000, 20_000);
    const chunks: string[] = [];
    for (let off = 0; off < rows.length; off += 7_919) chunks.push(rows.slice(off, off + 7_919));
    const writable = await sql`copy copied from stdin`.writable();
    await pipeline(Readable.from(chunks), writable);
    const counted = await sql<{ n: number }[]>`select count(*)::int as n from copied where id between 500000 and 599999`;
    expect(counted[0]?.n).toBe(20_000);

    const out: Buffer[] = [];
    const readable = await sql`copy (select * from copied where id between 500000 and 599999 order by id) to stdout`.readable();
    await pipeline(readable, new Writable({ write(chunk: Buffer, _e, cb) { out.push(chunk); cb(); } }));
    expect(Buffer.concat(out).toString('utf8')).toBe(rows);
    // The session is in step after both COPYs.
    expect(await sql`select 1 as one`).toEqual([{ one: 1 }]);
    await sql.end({ timeout: 1 });
  });
});
