// The statement matcher alone (docs/design.md §2 step 8): a model of how PostgreSQL answers pipelined
// extended-protocol batches (errors discard the rest until Sync) generates the wire traffic, and
// whatever the batch shapes, failures and the interleaving of both directions, every statement gets
// its own outcome in order. Plus the bounds on what a session keeps.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StatementTracker, type StatementRecord } from '../../proxy/relay/statements.js';
import type { RawMessage } from '../../proxy/wire/message-types.js';

const int16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; };
const int32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; };
const cstr = (s: string): Buffer => Buffer.from(`${s}\0`);
const msg = (type: string, body: Buffer = Buffer.alloc(0)): RawMessage => ({ type: type.charCodeAt(0), length: body.length + 4, prefix: body });
const parse = (sql: string) => msg('P', Buffer.concat([cstr(''), cstr(sql), int16(0)]));
const bind = (v: string) => msg('B', Buffer.concat([cstr(''), cstr(''), int16(0), int16(1), int32(v.length), Buffer.from(v), int16(0)]));
const execute = () => msg('E', Buffer.concat([cstr(''), int32(0)]));
const sync = () => msg('S');
const query = (sql: string) => msg('Q', cstr(sql));
const complete = (tag: string) => msg('C', cstr(tag));
const error = (code: string) => msg('E', Buffer.concat([Buffer.from('SERROR\0VERROR\0'), Buffer.from(`C${code}\0`), Buffer.from('Mfailed\0\0')]));
const ready = () => msg('Z', Buffer.from('I'));

type Fate = { kind: 'ok'; rows: number } | { kind: 'parse_error' } | { kind: 'exec_error' };
type Item = { kind: 'batch'; statements: Fate[] } | { kind: 'query'; fail: boolean };

/** Client messages and the server's answers (each tagged with the client message it needs first), and the expected records. */
function traffic(items: readonly Item[]) {
  const client: RawMessage[] = [];
  const server: { m: RawMessage; after: number }[] = [];
  const expected: Partial<StatementRecord>[] = [];
  let k = 0;
  for (const item of items) {
    if (item.kind === 'query') {
      const sql = `select ${k++}`;
      client.push(query(sql));
      const at = client.length - 1;
      server.push({ m: item.fail ? error('42703') : complete('SELECT 1'), after: at }, { m: ready(), after: at });
      expected.push(item.fail ? { protocol: 'simple', text: sql, outcome: 'error', sqlstate: '42703' } : { protocol: 'simple', text: sql, outcome: 'ok', tag: 'SELECT 1', rows: 1 });
      continue;
    }
    let failed = false;
    for (const fate of item.statements) {
      const sql = `select ${k++}`;
      client.push(parse(sql));
      const p = client.length - 1;
      client.push(bind(String(k)), execute());
      const e = client.length - 1;
      if (failed) {
        expected.push({ text: sql, outcome: 'skipped', values: [String(k)] });
        continue;
      }
      if (fate.kind === 'parse_error') {
        server.push({ m: error('42P01'), after: p });
        expected.push({ text: sql, outcome: 'error', sqlstate: '42P01' });
        failed = true;
      } else if (fate.kind === 'exec_error') {
        server.push({ m: msg('1'), after: p }, { m: msg('2'), after: p + 1 }, { m: error('22012'), after: e });
        expected.push({ text: sql, outcome: 'error', sqlstate: '22012' });
        failed = true;
      } else {
        server.push({ m: msg('1'), after: p }, { m: msg('2'), after: p + 1 });
        for (let r = 0; r < fate.rows; r++) server.push({ m: msg('D', int16(0)), after: e });
        server.push({ m: complete(`SELECT ${fate.rows}`), after: e });
        expected.push({ protocol: 'extended', text: sql, outcome: 'ok', rows: fate.rows, tag: `SELECT ${fate.rows}` });
      }
    }
    client.push(sync());
    server.push({ m: ready(), after: client.length - 1 });
  }
  return { client, server, expected };
}

const fate = fc.oneof(
  { weight: 6, arbitrary: fc.nat(3).map((rows) => ({ kind: 'ok', rows }) as Fate) },
  { weight: 1, arbitrary: fc.constant({ kind: 'parse_error' } as Fate) },
  { weight: 1, arbitrary: fc.constant({ kind: 'exec_error' } as Fate) },
);
const item = fc.oneof(
  fc.array(fate, { minLength: 1, maxLength: 6 }).map((statements) => ({ kind: 'batch', statements }) as Item),
  fc.boolean().map((fail) => ({ kind: 'query', fail }) as Item),
);

describe('StatementTracker', () => {
  it('matches every pipelined statement to its own outcome, whatever the failures and the interleaving', () => {
    fc.assert(
      fc.property(fc.array(item, { minLength: 1, maxLength: 12 }), fc.array(fc.boolean(), { maxLength: 400 }), (items, coin) => {
        const { client, server, expected } = traffic(items);
        const got: StatementRecord[] = [];
        const t = new StatementTracker({ now: () => 0, parameters: true, onStatement: (r) => got.push(r) });
        let c = 0;
        let s = 0;
        let flip = 0;
        // Deliver both directions interleaved by the coin flips; an answer only after what it answers.
        while (c < client.length || s < server.length) {
          const serverMay = s < server.length && (server[s] as { after: number }).after < c;
          const takeServer = serverMay && (c >= client.length || coin[flip++ % Math.max(1, coin.length)] === true);
          if (takeServer) t.fromServer((server[s++] as { m: RawMessage }).m);
          else t.fromClient(client[c++] as RawMessage);
        }
        expect(got).toHaveLength(expected.length);
        got.forEach((r, i) => expect(r).toMatchObject(expected[i] as object));
      }),
      { numRuns: 300 },
    );
  });

  it('a Parse that fails before its Execute is sent is one statement with the error; one with no Execute is recorded at Sync', () => {
    const got: StatementRecord[] = [];
    const t = new StatementTracker({ now: () => 0, parameters: false, onStatement: (r) => got.push(r) });
    t.fromClient(parse('select * from nowhere'));
    t.fromClient(msg('H')); // Flush: the driver waits for ParseComplete before it binds
    t.fromServer(error('42P01'));
    t.fromClient(bind('1'));
    t.fromClient(execute());
    t.fromClient(sync());
    t.fromServer(ready());
    // A prepare alone (Parse, Sync) that fails.
    t.fromClient(parse('select * from elsewhere'));
    t.fromClient(sync());
    t.fromServer(error('42P01'));
    t.fromServer(ready());
    expect(got.map((r) => [r.text, r.outcome, r.sqlstate])).toEqual([
      ['select * from nowhere', 'error', '42P01'],
      ['select * from elsewhere', 'error', '42P01'],
    ]);
  });

  it('keeps the unnamed statement and portal apart from named ones, replaced by the next unnamed Parse or Bind and forgotten at Close', () => {
    const got: StatementRecord[] = [];
    const t = new StatementTracker({ now: () => 0, parameters: false, onStatement: (r) => got.push(r) });
    const namedParse = (name: string, sql: string) => msg('P', Buffer.concat([cstr(name), cstr(sql), int16(0)]));
    const namedBind = (portal: string, statement: string) => msg('B', Buffer.concat([cstr(portal), cstr(statement), int16(0), int16(0), int16(0)]));
    const namedExecute = (portal: string) => msg('E', Buffer.concat([cstr(portal), int32(0)]));
    const close = (target: 'S' | 'P', name: string) => msg('C', Buffer.concat([Buffer.from(target), cstr(name)]));
    const run = (...client: RawMessage[]) => {
      for (const m of client) t.fromClient(m);
      for (const m of client) {
        if (m.type === 0x50) t.fromServer(msg('1'));
        else if (m.type === 0x42) t.fromServer(msg('2'));
        else if (m.type === 0x43) t.fromServer(msg('3'));
        else if (m.type === 0x45) t.fromServer(complete('SELECT 1'));
      }
      t.fromClient(sync());
      t.fromServer(ready());
    };
    run(namedParse('s1', 'select 1'), namedParse('', 'select 2'), namedBind('p1', 's1'), namedBind('', ''), namedExecute('p1'), namedExecute(''));
    run(namedParse('', 'select 3'), namedBind('', ''), namedExecute(''), namedExecute('p1'));
    run(close('S', ''), namedBind('', ''), namedExecute(''), namedBind('', 's1'), close('P', 'p1'), namedExecute('p1'), namedExecute(''));
    expect(got.map((r) => [r.statement, r.portal, r.text])).toEqual([
      ['s1', 'p1', 'select 1'],
      ['', '', 'select 2'],
      ['', '', 'select 3'],
      ['s1', 'p1', 'select 1'],
      // The unnamed statement was closed: its Bind's portal has no text; a closed portal neither.
      ['', '', null],
      ['', 'p1', null],
      ['s1', '', 'select 1'],
    ]);
  });

  it('statements still waiting when the session ends are recorded unfinished', () => {
    const got: StatementRecord[] = [];
    const t = new StatementTracker({ now: () => 0, parameters: false, onStatement: (r) => got.push(r) });
    t.fromClient(query('select pg_sleep(60)'));
    t.end();
    expect(got).toMatchObject([{ text: 'select pg_sleep(60)', outcome: 'unfinished', tag: null }]);
  });

  it('keeps a bounded amount of queued query text: past 8 MiB unanswered, texts are recorded as null', () => {
    const got: StatementRecord[] = [];
    const t = new StatementTracker({ now: () => 0, parameters: false, onStatement: (r) => got.push(r) });
    const text = `select '${'x'.repeat(4000)}'`;
    for (let i = 0; i < 3000; i++) t.fromClient(query(text));
    for (let i = 0; i < 3000; i++) {
      t.fromServer(complete('SELECT 1'));
      t.fromServer(ready());
    }
    expect(got).toHaveLength(3000);
    const kept = got.filter((r) => r.text !== null).length;
    expect(kept).toBeLessThanOrEqual(Math.ceil((8 * 1024 * 1024) / text.length));
    expect(kept).toBeGreaterThan(1000);
    expect(got.at(-1)).toMatchObject({ text: null, truncated: true, outcome: 'ok' });
  });
});
