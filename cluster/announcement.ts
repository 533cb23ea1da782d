// Reading a change announcement (docs/design.md §8, "Signed announcements"): the NOTIFY a store sends
// when a batch commits. It always names the writing process (origin); it carries the batch's rows only
// when signed with the store's key, and those rows are used only when the signature verifies, since
// any role that can connect to the store's database may NOTIFY on the channel.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { LoggedWrite } from './change-log.js';
import type { Sql } from './sql.js';

/** What an announcement says: who wrote (unverified) and, when its signature holds, what was written. */
export interface Announcement {
  readonly origin?: string;
  /** The batch's rows in seq order, present only when the HMAC verified. */
  readonly writes?: readonly LoggedWrite[];
  /** It was signed and the signature did not verify (or the signed text was not an announcement). */
  readonly forged: boolean;
}

const MAC_HEX = 64;
const SEQ = /^[1-9][0-9]{0,18}$/;

/**
 * The HMAC-SHA256 key of announcements, from the pads the store keeps (migration 4: ipad is the
 * 64-byte key XOR 0x36), or undefined when the store has no key (then every announcement is read
 * from the log, as before).
 */
export async function loadAnnouncementKey(sql: Sql): Promise<Buffer | undefined> {
  const { rows } = await sql.query<{ ipad: Buffer }>('SELECT ipad FROM rg_notify_key');
  const ipad = rows[0]?.ipad;
  if (ipad === undefined || ipad.length !== 64) return undefined;
  return Buffer.from(ipad.map((b) => b ^ 0x36));
}

/** Reads a payload of the change channel; `key` from loadAnnouncementKey. Never throws. */
export function readAnnouncement(payload: string, key: Buffer | undefined): Announcement {
  if (payload.length > MAC_HEX && payload.charCodeAt(MAC_HEX) === 0x20) {
    const text = payload.slice(MAC_HEX + 1);
    const parsed = parse(text);
    const writes = key !== undefined && verifies(key, payload.slice(0, MAC_HEX), text) ? writesOf(parsed) : undefined;
    return { ...originOf(parsed), ...(writes !== undefined ? { writes } : {}), forged: writes === undefined && key !== undefined };
  }
  return { ...originOf(parse(payload)), forged: false };
}

function verifies(key: Buffer, macHex: string, text: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(macHex)) return false;
  const expected = createHmac('sha256', key).update(text, 'utf8').digest();
  return timingSafeEqual(expected, Buffer.from(macHex, 'hex'));
}

function parse(text: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function originOf(parsed: Record<string, unknown> | undefined): { origin?: string } {
  return typeof parsed?.['origin'] === 'string' ? { origin: parsed['origin'] } : {};
}

/** The signed rows, each `{seq, payload}` with ascending seqs; undefined for anything else. */
function writesOf(parsed: Record<string, unknown> | undefined): LoggedWrite[] | undefined {
  const list = parsed?.['writes'];
  if (!Array.isArray(list) || list.length === 0) return undefined;
  const writes: LoggedWrite[] = [];
  let last = 0n;
  for (const w of list as unknown[]) {
    if (typeof w !== 'object' || w === null) return undefined;
    const { seq, payload } = w as { seq?: unknown; payload?: unknown };
    if (typeof seq !== 'string' || !SEQ.test(seq) || BigInt(seq) <= last || payload === undefined) return undefined;
    last = BigInt(seq);
    writes.push({ seq, payload });
  }
  return writes;
}
