// Reading a change announcement (docs/design.md §8, "Signed announcements"): the NOTIFY a store sends
// when a batch commits. It always names the writing process (origin); it carries the batch's writes,
// sealed, only when signed with the store's key, and they are used only when the signature verifies
// and the seal opens, since any role that can connect to the store's database may NOTIFY on the channel.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { openWrites, type AnnouncementKeys } from '../lib/announcement-seal.js';
import type { LoggedWrite } from './change-log.js';

/** What an announcement says: who wrote (unverified) and, when its signature holds, what was written. */
export interface Announcement {
  readonly origin?: string;
  /** The batch's rows in seq order, present only when the HMAC verified and the writes opened. */
  readonly writes?: readonly LoggedWrite[];
  /** It was signed and the signature did not verify, or the signed writes did not open. */
  readonly forged: boolean;
}

const MAC_HEX = 64;
const SEQ = /^[1-9][0-9]{0,18}$/;

/** Reads a payload of the change channel; `keys` from loadAnnouncementKeys. Never throws. */
export function readAnnouncement(payload: string, keys: AnnouncementKeys | undefined): Announcement {
  if (payload.length > MAC_HEX && payload.charCodeAt(MAC_HEX) === 0x20) {
    const text = payload.slice(MAC_HEX + 1);
    const parsed = parse(text);
    const writes = keys !== undefined && verifies(keys.mac, payload.slice(0, MAC_HEX), text) ? writesOf(keys, parsed) : undefined;
    return { ...originOf(parsed), ...(writes !== undefined ? { writes } : {}), forged: writes === undefined && keys !== undefined };
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

/** The signed seqs (ascending) paired with the writes sealed beside them; undefined for anything else. */
function writesOf(keys: AnnouncementKeys, parsed: Record<string, unknown> | undefined): LoggedWrite[] | undefined {
  const seqs = parsed?.['seqs'];
  const sealed = parsed?.['sealed'];
  if (!Array.isArray(seqs) || seqs.length === 0 || typeof sealed !== 'string') return undefined;
  let last = 0n;
  for (const seq of seqs as unknown[]) {
    if (typeof seq !== 'string' || !SEQ.test(seq) || BigInt(seq) <= last) return undefined;
    last = BigInt(seq);
  }
  const payloads = openWrites(keys, sealed);
  if (payloads === undefined || payloads.length !== seqs.length) return undefined;
  return payloads.map((payload, i) => ({ seq: seqs[i] as string, payload }));
}
