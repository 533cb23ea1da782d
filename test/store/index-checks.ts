// What a directory index must answer, checked the slow, obvious way against a store's snapshot: the
// person rule (docs/design.md §2 step 5), each person's groups, and that every access an index stopped
// granting between two observations was announced by a revocation event.
import { expect } from 'vitest';
import type { DirectoryIndex, PersonMatch, RevocationEvent } from '../../scim/directory-index.js';
import type { ScimAttributes } from '../../scim/model.js';
import { foldCase } from '../../scim/store/derive.js';
import type { DirectorySnapshot, DirectoryStore } from '../../scim/store/port.js';

export const emails = (...values: string[]): ScimAttributes => ({ emails: values.map((value) => ({ value })) });

/** A match reduced to what the rule decides: status and person id. */
export function decided(m: PersonMatch): string {
  return m.status === 'active' || m.status === 'inactive' ? `${m.status}:${m.person.id}` : m.status;
}

/** The rule written the slow, obvious way over a snapshot. */
export function referenceMatch(snap: DirectorySnapshot, identity: string): { status: string; candidates: string[] } {
  const k = identity.toLowerCase();
  const byName = snap.users.filter((u) => u.userName.toLowerCase() === k);
  const byEmail = snap.users.filter((u) => u.emails.some((e) => e.toLowerCase() === k));
  // A userName match is final, active or not (the store keeps userName unique).
  if (byName.length === 1) return { status: byName[0]!.active ? 'active' : 'inactive', candidates: [byName[0]!.id] };
  if (byName.length > 1) return { status: 'ambiguous', candidates: [] };
  const activeEmail = byEmail.filter((u) => u.active);
  if (activeEmail.length === 1) return { status: 'active', candidates: [activeEmail[0]!.id] };
  if (activeEmail.length > 1) return { status: 'ambiguous', candidates: [] };
  if (byEmail.length > 0) return { status: 'inactive', candidates: byEmail.map((u) => u.id) };
  return { status: 'unknown', candidates: [] };
}

/** Asserts the index answers every identity in the store exactly like the reference, groups included. */
export async function expectInStep(index: DirectoryIndex, store: DirectoryStore, extra: string[] = []): Promise<void> {
  const snap = await store.snapshot();
  const identities = new Set(extra);
  for (const u of snap.users) {
    identities.add(u.userName).add(u.userName.toUpperCase());
    for (const e of u.emails) identities.add(e);
  }
  for (const identity of identities) {
    const want = referenceMatch(snap, identity);
    const got = index.findPerson(identity);
    expect(got.status, identity).toBe(want.status);
    if (got.status === 'active' || got.status === 'inactive') {
      expect(want.candidates, identity).toContain(got.person.id);
      expect(got.via, identity).toBe(foldCase(got.person.userName) === foldCase(identity) ? 'userName' : 'email');
    }
  }
  const groups = new Map(snap.groups.map((g) => [g.id, g]));
  for (const u of snap.users) {
    const person = index.getPerson(u.id);
    expect(person).toMatchObject({ id: u.id, userName: u.userName, active: u.active });
    const want = snap.memberships
      .filter((m) => m.userId === u.id)
      .map((m) => groups.get(m.groupId))
      .sort((a, b) => a!.id.localeCompare(b!.id));
    expect([...person!.groups].sort((a, b) => a.id.localeCompare(b.id))).toEqual(want);
  }
  expect(index.stats()).toEqual({ persons: snap.users.length, groups: snap.groups.length, memberships: snap.memberships.length });
}

export interface Observed {
  decisions: Map<string, string>;
  /** person id -> group id -> displayName */
  groups: Map<string, Map<string, string>>;
}

export function observe(index: DirectoryIndex, identities: string[], userIds: string[]): Observed {
  const decisions = new Map(identities.map((i) => [i, decided(index.findPerson(i))]));
  const groups = new Map<string, Map<string, string>>();
  for (const id of userIds) {
    const p = index.getPerson(id);
    if (p !== undefined) groups.set(id, new Map(p.groups.map((g) => [g.id, g.displayName])));
  }
  return { decisions, groups };
}

/** Fail-closed check: every lost access between two observations was announced by an event. */
export function expectRevoked(before: Observed, after: Observed, events: RevocationEvent[]): void {
  const personEvent = (id: string): boolean =>
    events.some((e) => 'personId' in e && e.personId === id && e.type !== 'membership.removed');
  for (const [identity, was] of before.decisions) {
    if (!was.startsWith('active:') || after.decisions.get(identity) === was) continue;
    expect(personEvent(was.slice('active:'.length)), `${identity}: ${was} -> ${after.decisions.get(identity)}`).toBe(true);
  }
  for (const [personId, groups] of before.groups) {
    const now = after.groups.get(personId);
    for (const [groupId, displayName] of groups) {
      if (now?.get(groupId) === displayName) continue;
      const announced =
        events.some((e) => e.type === 'person.deleted' && e.personId === personId) ||
        events.some((e) => e.type === 'membership.removed' && e.personId === personId && e.groupId === groupId) ||
        events.some(
          (e) =>
            (e.type === 'group.deleted' || e.type === 'group.changed') &&
            e.groupId === groupId &&
            e.personIds.includes(personId),
        );
      expect(announced, `${personId} lost ${groupId} (${displayName})`).toBe(true);
    }
  }
}

