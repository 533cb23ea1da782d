// What a directory write changed, for `directory.change` audit events: attribute names (never their
// values), the new `active`, the members added and removed, and a one-line summary for people.
import { jsonEqual } from './json.js';
import type { MemberRef, ScimAttributes } from './model.js';
import { ENTERPRISE_USER_URN } from './schema.js';

const MAX_SUMMARY = 300;

export interface ChangeSummary {
  changed: string[];
  active?: boolean;
  /** Member ids added and removed (groups). */
  members?: { added: string[]; removed: string[] };
  summary: string;
}

function changedAttributes(before: ScimAttributes, after: ScimAttributes): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  const out: string[] = [];
  for (const k of names) {
    if (!jsonEqual(before[k], after[k])) out.push(k === ENTERPRISE_USER_URN ? 'enterprise' : k);
  }
  return out.sort();
}

/** Member ids added and removed between two member lists, compared on `value`, in list order. */
function memberDelta(before: readonly MemberRef[], after: readonly MemberRef[]): { added: string[]; removed: string[] } {
  const was = new Set(before.map((m) => m.value));
  const now = new Set(after.map((m) => m.value));
  return { added: [...now].filter((v) => !was.has(v)), removed: [...was].filter((v) => !now.has(v)) };
}

/**
 * Names the attributes a write changed, the new `active` state when it changed and the members
 * added and removed — never attribute values, so nothing sensitive reaches the audit log.
 * `before` is undefined for a create.
 */
export function summarizeChange(
  before: { attributes: ScimAttributes; members?: readonly MemberRef[] } | undefined,
  after: { attributes: ScimAttributes; members?: readonly MemberRef[] },
): ChangeSummary {
  const parts: string[] = [];
  const changed = changedAttributes(before?.attributes ?? {}, after.attributes);
  const out: ChangeSummary = { changed, summary: '' };
  if (changed.length > 0) parts.push(`${before === undefined ? 'set' : 'changed'} ${changed.join(', ')}`);
  const active = after.attributes.active;
  if (changed.includes('active') && typeof active === 'boolean') {
    parts.push(`active: ${active}`);
    out.active = active;
  }
  if (after.members !== undefined) {
    const delta = memberDelta(before?.members ?? [], after.members);
    if (delta.added.length > 0 || delta.removed.length > 0) {
      parts.push(`members +${delta.added.length} -${delta.removed.length}`);
      out.members = delta;
    }
  }
  const text = parts.length > 0 ? parts.join('; ') : 'no attribute changes';
  out.summary = text.length > MAX_SUMMARY ? `${text.slice(0, MAX_SUMMARY - 1)}…` : text;
  return out;
}
