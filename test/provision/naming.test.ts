// Personal role names (docs/design.md §7 step 1): the userName as it is when PostgreSQL can take it,
// otherwise a deterministic mapped name; as a table, and as properties over arbitrary strings.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_ROLE_NAME_BYTES, mappedRoleName, personalRoleName, unusableBecause } from '../../provision/naming.js';
import { quoteIdent, quoteLiteral } from '../../provision/sql-text.js';

describe('personalRoleName', () => {
  // The hash part is RFC 4648 base32 (lower case) of SHA-256(userName), first ten characters, e.g.
  // python3 -c "import hashlib,base64; print(base64.b32encode(hashlib.sha256(b'pg_admin').digest()).decode().lower()[:10])"
  it.each([
    ['alice@corp.com', '', 'alice@corp.com'],
    ['Alice@Corp.com', '', 'Alice@Corp.com'],
    [`o'brien"; DROP ROLE x; --`, '', `o'brien"; DROP ROLE x; --`],
    ['back\\slash', '', 'back\\slash'],
    ['аlice@corp.com', '', 'аlice@corp.com'],
    ['Zoë Ünal', '', 'Zoë Ünal'],
    ['pg_admin', '', 'pg-admin_e4xcl76a4l'],
    ['PG_Admin', 'u_', 'u_pg_admin_avu6bh5to3'],
    ['public', '', 'public_56q7g5oxmg'],
    ['None', 'ext_', 'ext_none_3sjxwwmjey'],
    ['a\u0000b', '', 'a_b_lgzhdlq3xs'],
    ['tab\there', '', 'tab_here_lodwley55u'],
    ['', '', 'user_4oymiquy7q'],
  ])('%j with prefix %j is %j', (userName, prefix, expected) => {
    expect(personalRoleName(userName, prefix)).toBe(expected);
  });

  it('maps names over 63 bytes, counting bytes not characters', () => {
    const ascii = 'a'.repeat(63);
    expect(personalRoleName(ascii, '')).toBe(ascii);
    expect(unusableBecause('a'.repeat(64))).toBe('it is longer than 63 bytes');
    // 32 two-byte characters are 64 bytes.
    expect(unusableBecause('é'.repeat(32))).toBe('it is longer than 63 bytes');
    const long = `${'x'.repeat(300)}@corp.com`;
    expect(personalRoleName(long, 'rg_')).toMatch(/^rg_x+_[a-z2-7]{10}$/);
    expect(Buffer.byteLength(personalRoleName(long, 'rg_'))).toBe(MAX_ROLE_NAME_BYTES);
  });

  it('properties: deterministic, at most 63 bytes, never pg_, never a control character, kept when usable', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), fc.constantFrom('', 'rg_', 'ext.', 'Ünï_'), (userName, prefix) => {
        const name = personalRoleName(userName, prefix);
        expect(personalRoleName(userName, prefix)).toBe(name);
        expect(Buffer.byteLength(name)).toBeLessThanOrEqual(MAX_ROLE_NAME_BYTES);
        expect(/^pg_/i.test(name)).toBe(false);
        expect(/[\u0000-\u001f\u007f-\u009f]/.test(name)).toBe(false);
        if (unusableBecause(userName) === undefined) expect(name).toBe(userName);
        else expect(name).toBe(mappedRoleName(userName, prefix));
      }),
      { numRuns: 2_000 },
    );
  });

  it('different userNames that map keep different names (the hash part)', () => {
    const names = new Set(['pg_a', 'pg_b', 'PG_A', 'pg_a ', 'pg_å'].map((u) => personalRoleName(u, '')));
    expect(names.size).toBe(5);
  });
});

describe('quoting', () => {
  it('doubles quotes and refuses what SQL text cannot carry', () => {
    expect(quoteIdent(`a"b`)).toBe(`"a""b"`);
    expect(quoteIdent(`"; DROP ROLE x; --`)).toBe(`"""; DROP ROLE x; --"`);
    expect(() => quoteIdent('a\u0000b')).toThrow(expect.objectContaining({ code: 'PROVISION_BAD_NAME' }));
    expect(quoteLiteral(`it's`)).toBe(`'it''s'`);
    expect(() => quoteLiteral('a\\b')).toThrow(expect.objectContaining({ code: 'PROVISION_BAD_NAME' }));
  });
});
