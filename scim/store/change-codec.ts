// Reading a logged write back (docs/design.md §8): an rg_changes payload, written by this or another
// instance (possibly another rolegate version), narrowed from `unknown` once, here, at the boundary.
import type { DirectoryChange } from './port.js';
import { StoreError, StoreErrorCode } from './store-error.js';

/**
 * The changes of one logged write, or StoreError `STORE_LOG_UNREADABLE` for anything this version
 * cannot apply exactly (a change type it does not know, a field of the wrong type). A follower must
 * then reload the whole directory: skipping a write it cannot read would leave its index wrong.
 */
export function decodeLoggedChanges(payload: unknown): DirectoryChange[] {
  if (!Array.isArray(payload)) throw unreadable('not a list of changes');
  return payload.map(decodeChange);
}

function decodeChange(v: unknown): DirectoryChange {
  const o = record(v);
  switch (o.type) {
    case 'user.upserted': {
      const u = record(o.user);
      const user = { id: text(u.id), userName: text(u.userName), active: bool(u.active), emails: texts(u.emails) };
      return { type: 'user.upserted', user };
    }
    case 'user.deleted':
      return { type: 'user.deleted', id: text(o.id) };
    case 'group.upserted': {
      const g = record(o.group);
      const group: { id: string; displayName: string; externalId?: string } = { id: text(g.id), displayName: text(g.displayName) };
      if (g.externalId !== undefined) group.externalId = text(g.externalId);
      return { type: 'group.upserted', group };
    }
    case 'group.deleted':
      return { type: 'group.deleted', id: text(o.id) };
    case 'members.added':
    case 'members.removed':
      return { type: o.type, groupId: text(o.groupId), userIds: texts(o.userIds) };
    default:
      throw unreadable(`unknown change type ${JSON.stringify(o.type)}`);
  }
}

function record(v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw unreadable('expected an object');
  return v as Record<string, unknown>;
}

function text(v: unknown): string {
  if (typeof v !== 'string') throw unreadable('expected a string');
  return v;
}

function bool(v: unknown): boolean {
  if (typeof v !== 'boolean') throw unreadable('expected a boolean');
  return v;
}

function texts(v: unknown): string[] {
  if (!Array.isArray(v)) throw unreadable('expected a list of strings');
  return v.map(text);
}

function unreadable(why: string): StoreError {
  return new StoreError(StoreErrorCode.logUnreadable, `a logged directory change cannot be applied: ${why}`);
}
