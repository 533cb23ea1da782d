// The indexed columns the store derives from SCIM attributes, and the peer-facing errors of a write.
// Both adapters use these so that uniqueness and lookups behave identically on SQLite and PostgreSQL.
import { ScimError } from '../errors.js';
import type { MemberRef, ScimAttributes } from '../model.js';
import type { DirectoryChange, GroupKey, UserKey } from './port.js';

/**
 * The case folding used for every case-insensitive key (userName, displayName, emails.value).
 * Computed in JS, never by SQL lower(), so it is Unicode-aware and identical on both stores (D14).
 */
export function foldCase(s: string): string {
  return s.toLowerCase();
}

export interface EmailKey {
  value: string;
  lc: string;
}

export interface UserColumns {
  userName: string;
  userNameLc: string;
  active: boolean;
  externalId: string | null;
  /** emails[].value as stored (D31), de-duplicated by folded value, first kept. */
  emails: EmailKey[];
}

export interface GroupColumns {
  displayName: string;
  displayNameLc: string;
  externalId: string | null;
}

/** The user's indexed columns; 400 invalidValue when the attributes break the model's guarantees. */
export function userColumns(attributes: ScimAttributes): UserColumns {
  const userName = attributes.userName;
  if (typeof userName !== 'string' || userName.length === 0) {
    throw new ScimError(400, 'invalidValue', 'userName is required');
  }
  const active = attributes.active;
  if (typeof active !== 'boolean') {
    throw new ScimError(400, 'invalidValue', 'active must be a boolean');
  }
  return {
    userName,
    userNameLc: foldCase(userName),
    active,
    externalId: optionalString(attributes.externalId, 'externalId'),
    emails: emailKeys(attributes.emails),
  };
}

/** The group's indexed columns; 400 invalidValue without a displayName. */
export function groupColumns(attributes: ScimAttributes): GroupColumns {
  const displayName = attributes.displayName;
  if (typeof displayName !== 'string' || displayName.length === 0) {
    throw new ScimError(400, 'invalidValue', 'displayName is required');
  }
  return {
    displayName,
    displayNameLc: foldCase(displayName),
    externalId: optionalString(attributes.externalId, 'externalId'),
  };
}

function optionalString(v: unknown, name: string): string | null {
  if (v === undefined) return null;
  if (typeof v !== 'string') throw new ScimError(400, 'invalidValue', `${name} must be a string`);
  return v;
}

function emailKeys(emails: unknown): EmailKey[] {
  if (!Array.isArray(emails)) return [];
  const seen = new Set<string>();
  const out: EmailKey[] = [];
  for (const e of emails as unknown[]) {
    if (typeof e !== 'object' || e === null) continue;
    const value = (e as { value?: unknown }).value;
    if (typeof value !== 'string' || value.length === 0) continue;
    const lc = foldCase(value);
    if (seen.has(lc)) continue;
    seen.add(lc);
    out.push({ value, lc });
  }
  return out;
}

/**
 * Members as the store keeps them: every `value` a non-empty string, de-duplicated by `value` (first
 * wins, RFC 7644 §3.5.2.1 / D11), `display` kept only when it is a string.
 */
export function normalizeMembers(members: readonly MemberRef[]): MemberRef[] {
  const seen = new Set<string>();
  const out: MemberRef[] = [];
  for (const m of members) {
    const value: unknown = m.value;
    if (typeof value !== 'string' || value.length === 0) {
      throw new ScimError(400, 'invalidValue', 'member value must be a non-empty string');
    }
    if (seen.has(value)) continue;
    seen.add(value);
    out.push(typeof m.display === 'string' ? { value, display: m.display } : { value });
  }
  return out;
}

export function userNameTaken(userName: string): ScimError {
  return new ScimError(409, 'uniqueness', `userName "${userName}" is already taken`);
}

export function displayNameTaken(displayName: string): ScimError {
  return new ScimError(409, 'uniqueness', `displayName "${displayName}" is already taken`);
}

/** D12: a member must reference an existing User. */
export function notAUser(id: string): ScimError {
  return new ScimError(400, 'invalidValue', `member "${id}" is not a User`);
}

export function userNotFound(id: string): ScimError {
  return new ScimError(404, undefined, `User ${id} not found`);
}

export function groupNotFound(id: string): ScimError {
  return new ScimError(404, undefined, `Group ${id} not found`);
}

/** The value a key is looked up by: folded for the case-insensitive attributes (D14, RFC 7643 §4.1). */
export function userKeyValue(key: UserKey): string {
  return key.attr === 'userName' || key.attr === 'emails.value' ? foldCase(key.value) : key.value;
}

export function groupKeyValue(key: GroupKey): string {
  return key.attr === 'displayName' ? foldCase(key.value) : key.value;
}

/** What a user write tells the change feed. */
export function userChange(id: string, cols: UserColumns): DirectoryChange {
  return {
    type: 'user.upserted',
    user: { id, userName: cols.userName, active: cols.active, emails: cols.emails.map((e) => e.value) },
  };
}

export function groupChange(id: string, cols: GroupColumns): DirectoryChange {
  const group: { id: string; displayName: string; externalId?: string } = { id, displayName: cols.displayName };
  if (cols.externalId !== null) group.externalId = cols.externalId;
  return { type: 'group.upserted', group };
}

/** Bounds a page request: negative or fractional values never reach SQL (LIMIT -1 means "all" in SQLite). */
export function pageBounds(offset: number, limit: number): { offset: number; limit: number } {
  const clamp = (n: number): number => (Number.isFinite(n) && n > 0 ? Math.floor(n) : 0);
  return { offset: clamp(offset), limit: clamp(limit) };
}
