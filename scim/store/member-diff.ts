// The member diff of a group write: what to insert, delete and re-label so that a PATCH adding 10,000
// members writes 10,000 rows, not the whole group again.
import type { MemberRef } from '../model.js';

export interface MemberDiff {
  /** New members, in the order the mutation listed them; they go after the kept ones. */
  added: MemberRef[];
  /** User ids no longer members. */
  removed: string[];
  /** Kept members whose `display` changed (absent `display` clears it). */
  relabeled: MemberRef[];
  /** The resulting member list: kept members in their stored order, then the added ones. */
  next: MemberRef[];
}

/**
 * Diffs stored members against the wanted list. `wanted` must already be normalized (unique values).
 * Stored order is insertion order, so a PUT that reorders members does not reorder them.
 */
export function diffMembers(current: readonly MemberRef[], wanted: readonly MemberRef[]): MemberDiff {
  const wantedByValue = new Map<string, MemberRef>();
  for (const m of wanted) wantedByValue.set(m.value, m);
  const currentValues = new Set<string>();
  const removed: string[] = [];
  const relabeled: MemberRef[] = [];
  const next: MemberRef[] = [];
  for (const m of current) {
    currentValues.add(m.value);
    const w = wantedByValue.get(m.value);
    if (w === undefined) {
      removed.push(m.value);
      continue;
    }
    if (w.display !== m.display) relabeled.push(w);
    next.push(w);
  }
  const added: MemberRef[] = [];
  for (const m of wanted) {
    if (currentValues.has(m.value)) continue;
    added.push(m);
    next.push(m);
  }
  return { added, removed, relabeled, next };
}
