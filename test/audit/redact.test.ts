// Redaction of statement text and parameter values (docs/design.md §6), as a table: what must go,
// and what must stay readable.
import { describe, expect, it } from 'vitest';
import { createAuditLog, redactStatement } from '../../audit/emitter.js';
import { redactSql, secretParameters } from '../../audit/redact.js';

const S = 'Sup3r-s3cret';

describe('redactSql', () => {
  it.each([
    [`CREATE ROLE bob LOGIN PASSWORD '${S}'`, `CREATE ROLE bob LOGIN PASSWORD '[redacted]'`],
    [`alter user bob with encrypted password E'it\\'s ${S}'`, `alter user bob with encrypted password '[redacted]'`],
    [`ALTER ROLE x PASSWORD $$se'${S}$$ VALID UNTIL 'infinity'`, `ALTER ROLE x PASSWORD '[redacted]' VALID UNTIL 'infinity'`],
    [`ALTER ROLE x PASSWORD $q$a$b${S}$q$`, `ALTER ROLE x PASSWORD '[redacted]'`],
    [`ALTER ROLE x PASSWORD 'cut off by the prefix ${S}`, `ALTER ROLE x PASSWORD '[redacted]'`],
    [`ALTER ROLE x PASSWORD 'it''s ${S}' LOGIN`, `ALTER ROLE x PASSWORD '[redacted]' LOGIN`],
    [`CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password '${S}')`, `CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password '[redacted]')`],
    [`select dblink_connect('host=a dbname=b password=${S} user=c')`, `select dblink_connect('host=a dbname=b password=[redacted] user=c')`],
    [`select dblink_connect('host=a password=''${S} x'' user=c')`, `select dblink_connect('host=a password=[redacted] user=c')`],
    [`select 'postgres://bob:${S}@db/app'`, `select 'postgres://bob:[redacted]@db/app'`],
    [`SET app.password = '${S}'`, `SET app.password = '[redacted]'`],
    [`set session my.api_key to ${S}`, `set session my.api_key to '[redacted]'`],
    [`ALTER DATABASE d SET app.secret_token = '${S}'`, `ALTER DATABASE d SET app.secret_token = '[redacted]'`],
    [`select set_config('app.password', '${S}', false)`, `select set_config('app.password', '[redacted]', false)`],
    [`select 'Bearer ${S}'`, `select 'Bearer [redacted]'`],
    [`select 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln-${S}'`, `select '[redacted]'`],
  ])('%s', (input, expected) => {
    expect(redactSql(input)).toBe(expected);
    expect(redactSql(input)).not.toContain(S);
  });

  it.each([
    'SELECT abalance FROM pgbench_accounts WHERE aid = 1',
    'select password_hash_algo, token_count from settings',
    "select 'keyboard' as k",
    'CREATE ROLE bob LOGIN PASSWORD NULL',
  ])('leaves %s as it is', (input) => {
    expect(redactSql(input)).toBe(input);
  });
});

describe('parameter values', () => {
  it('a value the statement uses as a password is redacted whole; the others only of what looks secret', () => {
    expect([...secretParameters('ALTER ROLE x PASSWORD $2')]).toEqual([2]);
    expect([...secretParameters("select set_config('x.password', $3, false), $1")]).toEqual([3]);
    const e = redactStatement({
      type: 'statement', session: 's', n: 1, protocol: 'extended', text: "select set_config('app.password', $1, false), $2, $3",
      params: { count: 3, values: [S, 'plain', 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiIxIn0.sig'] }, outcome: 'ok', tag: 'SELECT 1', rows: 1, sqlstate: null, ms: 1,
    });
    expect(e.params.values).toEqual(['[redacted]', 'plain', '[redacted]']);
  });
});

describe('the audit log (createAuditLog) redacting one statement after another', () => {
  it('redacts a repeated text every time, and never gives one text the answer of another', () => {
    const got: (string | null)[] = [];
    const log = createAuditLog({ append: (e) => got.push(e.type === 'statement' ? e.text : null), flushed: async () => undefined, available: true, head: () => ({ instance: 'i', seq: 0, hash: '', ts: null, file: null, available: true }) });
    const statement = (text: string) => ({ type: 'statement' as const, session: 's', n: 1, protocol: 'extended' as const, text, params: { count: 1 }, outcome: 'ok' as const, tag: 'ALTER ROLE', rows: null, sqlstate: null, ms: 1 });
    const secret = `ALTER ROLE x PASSWORD '${S}'`;
    for (const text of [secret, secret, 'SELECT 1', `${secret}`.slice(0), 'SELECT 1', 'SELECT 1']) log.emit(statement(text));
    expect(got).toEqual([
      `ALTER ROLE x PASSWORD '[redacted]'`, `ALTER ROLE x PASSWORD '[redacted]'`, 'SELECT 1', `ALTER ROLE x PASSWORD '[redacted]'`, 'SELECT 1', 'SELECT 1',
    ]);
  });
});
