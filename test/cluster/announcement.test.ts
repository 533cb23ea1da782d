// Signed change announcements (docs/design.md §8): the NOTIFY a PostgreSQL store sends at COMMIT
// carries the batch's change lists sealed (AES-256-GCM) beside their seqs, with an HMAC that
// PostgreSQL computes from the key table over both, and an instance takes the writes only when that
// HMAC verifies and the seal opens with the same key; anything else, or a batch too large for a
// NOTIFY, is read from the log. The key table is readable by its owner alone.
import { createHmac, randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { readAnnouncement } from '../../cluster/announcement.js';
import { readLog } from '../../cluster/change-log.js';
import { loadAnnouncementKeys, openWrites, sealWrites, type AnnouncementKeys } from '../../lib/announcement-seal.js';
import { openStore } from '../../scim/store/open.js';
import { CHANGE_CHANNEL } from '../../scim/store/postgres.js';
import type { DirectoryStore } from '../../scim/store/port.js';
import { createTestDatabase, superuserQuery, type TestDatabase } from '../helpers/postgres.js';
import { userAttrs } from '../store/fixtures.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function database(): Promise<TestDatabase> {
  const db = await createTestDatabase('announce');
  cleanups.push(() => db.drop());
  return db;
}

/** A migrated store on a fresh database, a client LISTENing on its change channel, and what it heard. */
async function listeningStore(): Promise<{ db: TestDatabase; store: DirectoryStore; sql: pg.Client; heard: string[]; next(): Promise<string> }> {
  const db = await database();
  const store = await openStore(db.url, { origin: 'writer-origin' });
  cleanups.push(() => store.close());
  const sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  cleanups.push(() => sql.end());
  const heard: string[] = [];
  let waiting: ((p: string) => void) | undefined;
  sql.on('notification', (n) => {
    if (n.channel !== CHANGE_CHANNEL) return;
    heard.push(n.payload ?? '');
    waiting?.(n.payload ?? '');
    waiting = undefined;
  });
  await sql.query(`LISTEN ${CHANGE_CHANNEL}`);
  const next = () => new Promise<string>((resolve, reject) => {
    waiting = resolve;
    setTimeout(() => reject(new Error('no announcement within 5 s')), 5_000).unref();
  });
  return { db, store, sql, heard, next };
}

const otherKeys = (): AnnouncementKeys => ({ mac: randomBytes(64), seal: randomBytes(32) });

describe('sealing the writes', () => {
  it('opens with the keys that sealed them, and not with others or after any change', () => {
    const keys = otherKeys();
    const sealed = sealWrites(keys, ['[{"type":"user.deleted","id":"a"}]', '{"b":[1,2]}']);
    expect(openWrites(keys, sealed)).toEqual([[{ type: 'user.deleted', id: 'a' }], { b: [1, 2] }]);
    expect(openWrites(otherKeys(), sealed)).toBeUndefined();
    const raw = Buffer.from(sealed, 'base64url');
    for (const at of [0, 20, raw.length - 1]) {
      const flipped = Buffer.from(raw);
      flipped[at] = flipped[at]! ^ 1;
      expect(openWrites(keys, flipped.toString('base64url'))).toBeUndefined();
    }
    expect(openWrites(keys, 'short')).toBeUndefined();
    // Every announcement has a salt of its own: the same writes never seal to the same text.
    expect(sealWrites(keys, ['[]'])).not.toBe(sealWrites(keys, ['[]']));
  });
});

describe('a store write announces its rows, signed', () => {
  it('carries exactly the rows the log holds, sealed, with an HMAC that verifies with the key the store keeps', async () => {
    const t = await listeningStore();
    const heard = t.next();
    const user = await t.store.createUser(userAttrs('signed@corp.example'));
    const payload = await heard;
    const keys = await loadAnnouncementKeys(t.sql);
    expect(keys?.mac.length).toBe(64);
    const a = readAnnouncement(payload, keys);
    const log = await readLog(t.sql, '0');
    expect(a).toEqual({ origin: 'writer-origin', writes: log.writes, forged: false });
    expect(JSON.stringify(a.writes)).toContain(user.id);
    // Anyone who may connect may LISTEN: the directory itself is not in the clear.
    expect(payload).not.toContain(user.id);
    expect(payload).not.toContain('signed@corp.example');
  });

  it('moved seqs, another key, writes that do not open or a missing signature give no rows; a bad signature is counted as forged', async () => {
    const t = await listeningStore();
    const heard = t.next();
    await t.store.createUser(userAttrs('tamper@corp.example'));
    const payload = await heard;
    const keys = (await loadAnnouncementKeys(t.sql))!;
    expect(readAnnouncement(payload, keys).writes).toHaveLength(1);
    const text = payload.slice(65);
    const announced = JSON.parse(text) as { seq: string; seqs: string[]; sealed: string };
    // The same sealed writes moved to another position: the signature binds them to their seqs.
    const moved = JSON.stringify({ ...announced, seqs: [String(Number(announced.seqs[0]) + 1)] });
    expect(readAnnouncement(`${payload.slice(0, 65)}${moved}`, keys)).toEqual({ origin: 'writer-origin', forged: true });
    expect(readAnnouncement(payload, otherKeys())).toEqual({ origin: 'writer-origin', forged: true });
    // Signed with the right key (as only the store could) around writes that do not open: not applied.
    const resealed = JSON.stringify({ ...announced, sealed: sealWrites(otherKeys(), ['[]']) });
    const mac = createHmac('sha256', keys.mac).update(resealed).digest('hex');
    expect(readAnnouncement(`${mac} ${resealed}`, keys)).toEqual({ origin: 'writer-origin', forged: true });
    // The text without its signature, as anyone may NOTIFY it: the origin only, read from the log.
    expect(readAnnouncement(text, keys)).toEqual({ origin: 'writer-origin', forged: false });
    expect(readAnnouncement(`${'0'.repeat(64)} not json`, keys)).toEqual({ forged: true });
    expect(readAnnouncement('', keys)).toEqual({ forged: false });
  });

  it('a batch too large for one NOTIFY announces its last position unsigned (followers read it)', async () => {
    const t = await listeningStore();
    const heard = t.next();
    // 600 emails make one user's change far longer than a NOTIFY may carry.
    const user = await t.store.createUser(userAttrs('many.emails@corp.example', { emails: Array.from({ length: 600 }, (_, i) => ({ value: `alias.${i}@corp.example` })) }));
    const payload = await heard;
    const log = await readLog(t.sql, '0');
    expect(JSON.stringify(log.writes)).toContain(user.id);
    expect(JSON.parse(payload)).toEqual({ seq: log.writes.at(-1)!.seq, origin: 'writer-origin' });
    expect(readAnnouncement(payload, await loadAnnouncementKeys(t.sql))).toEqual({ origin: 'writer-origin', forged: false });
  });

  it('a store whose key row is gone still commits and announces, unsigned', async () => {
    const t = await listeningStore();
    await t.sql.query('DELETE FROM rg_notify_key');
    const heard = t.next();
    await t.store.createUser(userAttrs('keyless@corp.example'));
    expect(readAnnouncement(await heard, undefined)).toEqual({ origin: 'writer-origin', forged: false });
    expect(await loadAnnouncementKeys(t.sql)).toBeUndefined();
  });
});

describe('the announcement key', () => {
  it('is readable by the store’s own role only, even where default privileges grant every new table to a reporting role', async () => {
    const role = `reporting_${randomBytes(4).toString('hex')}`;
    await superuserQuery(`CREATE ROLE ${role} NOLOGIN`);
    cleanups.push(async () => {
      await superuserQuery(`DROP ROLE IF EXISTS ${role}`);
    });
    const db = await database();
    await superuserQuery(`ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT ON TABLES TO ${role}`, [], db.name);
    const store = await openStore(db.url);
    await store.close();
    const can = async (table: string) =>
      (await superuserQuery<{ ok: boolean }>(`SELECT has_table_privilege($1, $2, 'SELECT') OR has_table_privilege($1, $2, 'INSERT') AS ok`, [role, table], db.name)).rows[0]?.ok;
    // The default privileges did apply to the store's other tables; the key's were revoked.
    expect(await can('rg_users')).toBe(true);
    expect(await can('rg_notify_key')).toBe(false);
    expect((await superuserQuery<{ n: number }>('SELECT count(*)::int AS n FROM rg_notify_key', [], db.name)).rows[0]?.n).toBe(1);
  });

  it('differs between two stores', async () => {
    const keys = [];
    for (let i = 0; i < 2; i++) {
      const db = await database();
      await (await openStore(db.url)).close();
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      keys.push(await loadAnnouncementKeys(c));
      await c.end();
    }
    expect(keys[0]).toBeDefined();
    expect(keys[0]!.mac.equals(keys[1]!.mac)).toBe(false);
  });
});
