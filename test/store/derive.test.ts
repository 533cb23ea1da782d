// Column derivation and key folding shared by both stores (pure).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ScimError } from '../../scim/errors.js';
import {
  foldCase,
  groupColumns,
  groupKeyValue,
  normalizeMembers,
  pageBounds,
  userColumns,
  userKeyValue,
} from '../../scim/store/derive.js';

describe('userColumns', () => {
  it('derives folded keys and de-duplicates emails by folded value, keeping the first spelling', () => {
    expect(
      userColumns({
        userName: 'ÄBC@Corp',
        active: false,
        externalId: 'X',
        emails: [{ value: 'A@x' }, { value: 'a@X' }, { value: '' }, { type: 'work' }, 'junk', { value: 'b@x' }],
      }),
    ).toEqual({
      userName: 'ÄBC@Corp',
      userNameLc: 'äbc@corp',
      active: false,
      externalId: 'X',
      emails: [
        { value: 'A@x', lc: 'a@x' },
        { value: 'b@x', lc: 'b@x' },
      ],
    });
  });

  it.each([
    [{ active: true }, 'userName is required'],
    [{ userName: '', active: true }, 'userName is required'],
    [{ userName: 'a' }, 'active must be a boolean'],
    [{ userName: 'a', active: 'false' }, 'active must be a boolean'],
    [{ userName: 'a', active: true, externalId: 5 }, 'externalId must be a string'],
  ])('rejects %j with 400 invalidValue', (attrs, detail) => {
    let err: unknown;
    try {
      userColumns(attrs);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ScimError);
    expect(err).toMatchObject({ status: 400, scimType: 'invalidValue', detail });
  });
});

describe('groupColumns, keys and members', () => {
  it('derives the group columns', () => {
    expect(groupColumns({ displayName: 'Eng' })).toEqual({ displayName: 'Eng', displayNameLc: 'eng', externalId: null });
    expect(() => groupColumns({})).toThrow(ScimError);
  });

  it('folds only the case-insensitive keys', () => {
    expect(userKeyValue({ attr: 'userName', value: 'ÄB' })).toBe('äb');
    expect(userKeyValue({ attr: 'emails.value', value: 'A@X' })).toBe('a@x');
    expect(userKeyValue({ attr: 'externalId', value: 'AB' })).toBe('AB');
    expect(userKeyValue({ attr: 'id', value: 'AB' })).toBe('AB');
    expect(groupKeyValue({ attr: 'displayName', value: 'AB' })).toBe('ab');
    expect(groupKeyValue({ attr: 'members.value', value: 'AB' })).toBe('AB');
  });

  it('folding is idempotent and agrees for strings that differ only in case', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (s) => {
        expect(foldCase(foldCase(s))).toBe(foldCase(s));
        expect(foldCase(s.toUpperCase())).toBe(foldCase(s.toUpperCase().toLowerCase()));
      }),
    );
  });

  it('normalizes members: first occurrence wins, display kept only as a string', () => {
    expect(normalizeMembers([{ value: 'a' }, { value: 'b', display: 'B' }, { value: 'a', display: 'A' }])).toEqual([
      { value: 'a' },
      { value: 'b', display: 'B' },
    ]);
    expect(() => normalizeMembers([{ value: '' }])).toThrow(ScimError);
  });

  it.each([
    [0, 100, 0, 100],
    [-1, 5, 0, 5],
    [2.7, 3.2, 2, 3],
    [Number.NaN, -4, 0, 0],
    [Number.POSITIVE_INFINITY, 1, 0, 1],
  ])('pageBounds(%d, %d) = (%d, %d)', (offset, limit, o, l) => {
    expect(pageBounds(offset, limit)).toEqual({ offset: o, limit: l });
  });
});
