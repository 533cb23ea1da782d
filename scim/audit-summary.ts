// Short, secret-free descriptions of directory writes for `directory.change` audit events.
import { jsonEqual } from './json.js';
import type { MemberRef, ScimAttributes } from './model.js';
import { ENTERPRISE_USER_URN } from './schema.js';

const MAX_SUMMARY = 300;

function changedAttributes(before: ScimAttributes, after: ScimAttributes): string[] {
  const names = new Set([...Object.keys(before), ...Object.keys(after)]);
  const out: string[] = [];
  for (const k of names) {
    if (!jsonEqual(before[k], after[k])) out.push(k === ENTERPRISE_USER_URN ? 'enterprise' : k);
  }
  return out.sort();
}

/** `+added -removed` counts between two member lists, compared on `value`. */
function memberDelta(before: readonly MemberRef[], after: readonly MemberRef[]): string | undefined {
  const was = new Set(before.map((m) => m.value));
  const now = new Set(after.map((m) => m.value));
  let added = 0;
  let removed = 0;
  for (const v of now) if (!was.has(v)) added++;
  for (const v of was) if (!now.has(v)) removed++;
  if (added === 0 && removed === 0) return undefined;
  return `members +${added} -${removed}`;
}

/**
 * Names the attributes a write changed, the new `active` state when it changed and the member
 * delta — never attribute values, so nothing sensitive reaches the audit log. `before` is
 * undefined for a create.
 */
export function summarizeChange(
  before: { attributes: ScimAttributes; members?: readonly MemberRef[] } | undefined,
  after: { attributes: ScimAttributes; members?: readonly MemberRef[] },
): string {
  const parts: string[] = [];
  const names = changedAttributes(before?.attributes ?? {}, after.attributes);
  if (names.length > 0) parts.push(`${before === undefined ? 'set' : 'changed'} ${names.join(', ')}`);
  const active = after.attributes.active;
  if (names.includes('active') && typeof active === 'boolean') parts.push(`active: ${active}`);
  if (after.members !== undefined) {
    const delta = memberDelta(before?.members ?? [], after.members);
    if (delta !== undefined) parts.push(delta);
  }
  const text = parts.length > 0 ? parts.join('; ') : 'no attribute changes';
  return text.length > MAX_SUMMARY ? `${text.slice(0, MAX_SUMMARY - 1)}…` : text;
}
