// The secrecy half of a change announcement (docs/design.md §8, "Signed announcements"): the writes a
// NOTIFY carries are sealed (AES-256-GCM), since any role that may connect to the store's database may
// LISTEN, and the change log's rows are readable by the store's role alone. The other half, the HMAC
// that binds the sealed writes to their log positions, is computed by PostgreSQL with the same key.
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import type pg from 'pg';

/** The store's announcement key, as two keys of their own. */
export interface AnnouncementKeys {
  /** HMAC-SHA256 key of the whole announcement text (the 64 bytes PostgreSQL signs with). */
  readonly mac: Buffer;
  /** Derives each announcement's own AES-256-GCM key from its random salt. */
  readonly seal: Buffer;
}

const SALT_BYTES = 16;
const TAG_BYTES = 16;
/** Each announcement has a key of its own, so a fixed IV never meets the same key twice. */
const IV = Buffer.alloc(12);

/**
 * The keys, from the pads the store keeps (migration 4: ipad is the 64-byte key XOR 0x36), or
 * undefined when the store has no key (then announcements carry no writes and every batch is read).
 */
export async function loadAnnouncementKeys(sql: pg.Pool | pg.ClientBase): Promise<AnnouncementKeys | undefined> {
  const { rows } = await sql.query<{ ipad: Buffer }>('SELECT ipad FROM rg_notify_key');
  const ipad = rows[0]?.ipad;
  if (ipad === undefined || ipad.length !== 64) return undefined;
  const mac = Buffer.from(ipad.map((b) => b ^ 0x36));
  return { mac, seal: createHmac('sha256', mac).update('rolegate announcement seal').digest() };
}

/** `jsonTexts` (each a JSON value) sealed as one base64url string: salt, GCM tag, ciphertext of their JSON array. */
export function sealWrites(keys: AnnouncementKeys, jsonTexts: readonly string[]): string {
  const salt = randomBytes(SALT_BYTES);
  const cipher = createCipheriv('aes-256-gcm', messageKey(keys, salt), IV);
  const body = Buffer.concat([cipher.update(`[${jsonTexts.join(',')}]`, 'utf8'), cipher.final()]);
  return Buffer.concat([salt, cipher.getAuthTag(), body]).toString('base64url');
}

/** The values sealWrites sealed, or undefined for anything that does not open with these keys. */
export function openWrites(keys: AnnouncementKeys, sealed: string): unknown[] | undefined {
  const raw = Buffer.from(sealed, 'base64url');
  if (raw.length < SALT_BYTES + TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', messageKey(keys, raw.subarray(0, SALT_BYTES)), IV);
    decipher.setAuthTag(raw.subarray(SALT_BYTES, SALT_BYTES + TAG_BYTES));
    const text = Buffer.concat([decipher.update(raw.subarray(SALT_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    const values = JSON.parse(text) as unknown;
    return Array.isArray(values) ? values : undefined;
  } catch {
    return undefined;
  }
}

function messageKey(keys: AnnouncementKeys, salt: Buffer): Buffer {
  return createHmac('sha256', keys.seal).update(salt).digest();
}
