// The suite-wide secret scan's own checks (test/helpers/secret-scan.ts): it finds a secret wherever
// a log or an audit line could put it, including the parts of a JWT, and does not cry wolf.
import { describe, expect, it } from 'vitest';
import { findSecrets, secretSet } from '../helpers/secret-scan.js';

const token = 'eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZUBjb3JwLmNvbSJ9.MEUCIQDxk9c0lqPbVl8n6v3Q2dLq';
const scim = 'q3Xb0Jk1mZ8v_uT-2WcRyA4hLdPe';
const password = '4f1c2a9be07d33a1c8e5f6a7';

describe('the secret scan', () => {
  const set = secretSet([token, scim, password, 'short']);
  it.each([
    [`{"msg":"login","authorization":"Bearer ${scim}"}`, scim],
    [`password=${password} host=db`, password],
    [`postgres://u:${password}@h/db`, password],
    [`{"text":"select '${token}'"}`, token],
    [`signature alone: ${token.split('.')[2]}.`, token.split('.')[2]],
    [`"values":["${token.split('.')[1]}"]`, token.split('.')[1]],
  ])('finds a secret in %s', (text, secret) => {
    expect(findSecrets(text, set)).toContain(secret);
  });

  it('does not flag text that merely contains shorter or different runs', () => {
    expect(findSecrets(`{"msg":"session started","person":"alice@corp.com","role":"app_reader","hash":"${'a'.repeat(64)}"}`, set)).toEqual([]);
    expect(set.has('short')).toBe(false);
  });
});
