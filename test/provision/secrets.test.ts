// The personal login secrets (docs/design.md §7 step 2): sealed with AES-256-GCM under the configured key,
// bound to the person, and turned into a SCRAM-SHA-256 verifier that proves and answers exactly like
// the password would (RFC 7677's own exchange).
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SCRAM_VERIFIER, scramVerifier } from '../../provision/scram-verifier.js';
import { SecretBox, newLoginSecret } from '../../provision/secret-box.js';

describe('SecretBox', () => {
  const box = new SecretBox(randomBytes(32));

  it('seals and opens; the sealed text never contains the secret and differs every time', () => {
    const secret = newLoginSecret();
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const a = box.seal('person-1', secret);
    const b = box.seal('person-1', secret);
    expect(a).not.toBe(b);
    expect(a).not.toContain(secret);
    expect(a).toMatch(/^v1:[A-Za-z0-9+/=]+$/);
    expect(box.open('person-1', a)).toBe(secret);
  });

  it('refuses another key, another person, and any altered byte', () => {
    const sealed = box.seal('person-1', 'the-secret');
    expect(() => new SecretBox(randomBytes(32)).open('person-1', sealed)).toThrow(expect.objectContaining({ code: 'PROVISION_SECRET' }));
    expect(() => box.open('person-2', sealed)).toThrow(expect.objectContaining({ code: 'PROVISION_SECRET' }));
    const raw = Buffer.from(sealed.slice(3), 'base64');
    for (const at of [0, 12, 28, raw.length - 1]) {
      const bad = Buffer.from(raw);
      bad[at] = (bad[at] as number) ^ 1;
      expect(() => box.open('person-1', `v1:${bad.toString('base64')}`)).toThrow(expect.objectContaining({ code: 'PROVISION_SECRET' }));
    }
    for (const junk of ['', 'v1:', 'v2:AAAA', 'not sealed at all']) {
      expect(() => box.open('person-1', junk)).toThrow(expect.objectContaining({ code: 'PROVISION_SECRET' }));
    }
  });

  it('takes only a 32-byte key', () => {
    expect(() => new SecretBox(randomBytes(16))).toThrow(/32 bytes/);
  });
});

describe('scramVerifier', () => {
  // RFC 7677 §3: user "user", password "pencil", and the exchange's messages.
  const salt = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
  const authMessage =
    'n=user,r=rOprNGfwEbeRWgbNEkqO,' +
    'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,' +
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0';
  const clientProof = Buffer.from('dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=', 'base64');
  const hmac = (key: Buffer, data: string) => createHmac('sha256', key).update(data).digest();

  it('has PostgreSQL\'s form, and checks RFC 7677\'s client proof and gives its server signature as a server would', async () => {
    const verifier = await scramVerifier('pencil', { salt, iterations: 4096 });
    const m = SCRAM_VERIFIER.exec(verifier);
    expect(m?.slice(1, 3)).toEqual(['4096', 'W22ZaJ0SNY7soEsUEjb6gQ==']);
    const storedKey = Buffer.from(m![3]!, 'base64');
    const serverKey = Buffer.from(m![4]!, 'base64');
    // RFC 5802 §3, the server side: ClientKey = proof XOR HMAC(StoredKey, AuthMessage); H(ClientKey) = StoredKey.
    const signature = hmac(storedKey, authMessage);
    const clientKey = Buffer.from(clientProof.map((b, i) => b ^ (signature[i] as number)));
    expect(createHash('sha256').update(clientKey).digest().equals(storedKey)).toBe(true);
    expect(hmac(serverKey, authMessage).toString('base64')).toBe('6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  });

  it('uses a fresh 16-byte salt and PostgreSQL\'s 4096 iterations by default, and never holds the secret', async () => {
    const secret = newLoginSecret();
    const [a, b] = await Promise.all([scramVerifier(secret), scramVerifier(secret)]);
    expect(a).not.toBe(b);
    expect(SCRAM_VERIFIER.exec(a)?.[1]).toBe('4096');
    expect(Buffer.from(SCRAM_VERIFIER.exec(a)![2]!, 'base64')).toHaveLength(16);
    expect(a).not.toContain(secret);
  });

  it('refuses a secret SASLprep would change (only generated ASCII secrets are sealed)', async () => {
    await expect(scramVerifier('pässword')).rejects.toThrow(/printable ASCII/);
    await expect(scramVerifier('with space')).rejects.toThrow(/printable ASCII/);
  });
});
