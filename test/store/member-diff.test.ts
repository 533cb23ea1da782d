// The member diff (pure): table cases and properties over random member lists.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { MemberRef } from '../../scim/model.js';
import { normalizeMembers } from '../../scim/store/derive.js';
import { diffMembers } from '../../scim/store/member-diff.js';

const m = (value: string, display?: string): MemberRef => (display === undefined ? { value } : { value, display });

describe('diffMembers', () => {
  it.each([
    { name: 'empty to empty', current: [], wanted: [], added: [], removed: [], relabeled: [], next: [] },
    { name: 'add to empty', current: [], wanted: [m('a'), m('b')], added: [m('a'), m('b')], removed: [], relabeled: [], next: [m('a'), m('b')] },
    { name: 'remove all', current: [m('a'), m('b')], wanted: [], added: [], removed: ['a', 'b'], relabeled: [], next: [] },
    { name: 'same set, new order keeps stored order', current: [m('a'), m('b')], wanted: [m('b'), m('a')], added: [], removed: [], relabeled: [], next: [m('a'), m('b')] },
    { name: 'relabel', current: [m('a', 'A')], wanted: [m('a', 'Alpha')], added: [], removed: [], relabeled: [m('a', 'Alpha')], next: [m('a', 'Alpha')] },
    { name: 'clear a label', current: [m('a', 'A')], wanted: [m('a')], added: [], removed: [], relabeled: [m('a')], next: [m('a')] },
    {
      name: 'mixed',
      current: [m('a'), m('b'), m('c')],
      wanted: [m('d'), m('c', 'C'), m('a')],
      added: [m('d')],
      removed: ['b'],
      relabeled: [m('c', 'C')],
      next: [m('a'), m('c', 'C'), m('d')],
    },
  ])('$name', ({ current, wanted, added, removed, relabeled, next }) => {
    expect(diffMembers(current, wanted)).toEqual({ added, removed, relabeled, next });
  });

  const memberList = fc
    .array(fc.record({ value: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g'), display: fc.option(fc.constantFrom('x', 'y'), { nil: undefined }) }))
    .map((list) => normalizeMembers(list.map((x) => m(x.value, x.display))));

  it('replaying the diff on the stored list yields `next`, which holds exactly the wanted members', () => {
    fc.assert(
      fc.property(memberList, memberList, (current, wanted) => {
        const d = diffMembers(current, wanted);
        const removed = new Set(d.removed);
        const relabeled = new Map(d.relabeled.map((r) => [r.value, r]));
        const replayed = [
          ...current.filter((c) => !removed.has(c.value)).map((c) => relabeled.get(c.value) ?? c),
          ...d.added,
        ];
        expect(replayed).toEqual(d.next);
        const byValue = new Map(wanted.map((w) => [w.value, w]));
        expect(new Set(d.next.map((n) => n.value))).toEqual(new Set(byValue.keys()));
        for (const n of d.next) expect(n).toEqual(byValue.get(n.value));
        const currentValues = new Set(current.map((c) => c.value));
        for (const a of d.added) expect(currentValues.has(a.value)).toBe(false);
        for (const r of d.removed) expect(byValue.has(r)).toBe(false);
      }),
    );
  });

  it('a diff against itself is empty', () => {
    fc.assert(
      fc.property(memberList, (list) => {
        const d = diffMembers(list, list);
        expect([d.added, d.removed, d.relabeled]).toEqual([[], [], []]);
        expect(d.next).toEqual(list);
      }),
    );
  });

  it('diffs 10,000 added to 10,000 kept members', () => {
    const current = Array.from({ length: 10_000 }, (_, i) => m(`u${i}`));
    const wanted = [...current, ...Array.from({ length: 10_000 }, (_, i) => m(`v${i}`))];
    const d = diffMembers(current, wanted);
    expect(d.added).toHaveLength(10_000);
    expect(d.next).toHaveLength(20_000);
  });
});
