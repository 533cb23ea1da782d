// SCRAM-SHA-256 client: RFC 7677 test vector, a reference server for random exchanges, hostile server messages.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UpstreamError } from '../../proxy/upstream/errors.js';
import { MAX_SCRAM_ITERATIONS, createScramClient, saslPrep } from '../../proxy/upstream/scram.js';

// RFC 7677 §3 (user "user", password "pencil").
const RFC7677 = {
  nonce: 'rOprNGfwEbeRWgbNEkqO',
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal:
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};

const hmac = (key: Buffer, data: string): Buffer => createHmac('sha256', key).update(data).digest();

/** What a SCRAM server stores and checks (RFC 5802 §3), written from the RFC independently of the client. */
function referenceServer(password: string, salt: Buffer, iterations: number) {
  const salted = pbkdf2Sync(saslPrep(password), salt, iterations, 32, 'sha256');
  const storedKey = createHash('sha256').update(hmac(salted, 'Client Key')).digest();
  const serverKey = hmac(salted, 'Server Key');
  return {
    serverFirst(clientFirst: string): { message: string; bare: string } {
      const bare = clientFirst.slice(clientFirst.indexOf(',', clientFirst.indexOf(',') + 1) + 1);
      const clientNonce = /r=([^,]+)/.exec(bare)?.[1] ?? '';
      return { message: `r=${clientNonce}srv${randomBytes(9).toString('base64')},s=${salt.toString('base64')},i=${iterations}`, bare };
    },
    /** Checks the client proof; returns server-final-message. */
    verify(bare: string, serverFirst: string, clientFinal: string): string {
      const withoutProof = clientFinal.slice(0, clientFinal.lastIndexOf(',p='));
      const proof = Buffer.from(clientFinal.slice(clientFinal.lastIndexOf(',p=') + 3), 'base64');
      const authMessage = `${bare},${serverFirst},${withoutProof}`;
      const signature = hmac(storedKey, authMessage);
      const clientKey = Buffer.from(proof.map((b, i) => b ^ (signature[i] as number)));
      const ok = timingSafeEqual(createHash('sha256').update(clientKey).digest(), storedKey);
      if (!ok) throw new Error('bad proof');
      return `v=${hmac(serverKey, authMessage).toString('base64')}`;
    },
  };
}

async function expectAuthError(promise: Promise<unknown> | (() => unknown)): Promise<UpstreamError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).code).toBe('UPSTREAM_AUTH');
    return err as UpstreamError;
  }
  throw new Error('expected an UpstreamError');
}

describe('SCRAM-SHA-256 client', () => {
  it('reproduces the RFC 7677 exchange', async () => {
    const client = createScramClient({ username: 'user', password: 'pencil', nonce: RFC7677.nonce });
    expect(client.mechanism).toBe('SCRAM-SHA-256');
    expect(client.clientFirst).toBe(RFC7677.clientFirst);
    expect(await client.clientFinal(RFC7677.serverFirst)).toBe(RFC7677.clientFinal);
    expect(() => client.verifyServerFinal(RFC7677.serverFinal)).not.toThrow();
  });

  it('refuses a server signature that does not prove the password', async () => {
    const client = createScramClient({ username: 'user', password: 'pencil', nonce: RFC7677.nonce });
    await client.clientFinal(RFC7677.serverFirst);
    const forged = 'v=' + Buffer.alloc(32, 7).toString('base64');
    const err = await expectAuthError(() => client.verifyServerFinal(forged));
    expect(err.message).toMatch(/does not know the password/);
  });

  it('refuses a server that answered with the wrong password', async () => {
    const client = createScramClient({ username: 'user', password: 'pencil!', nonce: RFC7677.nonce });
    await client.clientFinal(RFC7677.serverFirst);
    await expectAuthError(() => client.verifyServerFinal(RFC7677.serverFinal));
  });

  it.each([
    ['e=invalid-proof', /server-error invalid-proof/],
    ['v=', /does not know/],
    ['v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4', /does not know/], // not canonical base64
    ['v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=AAAA', /does not know/], // too long
    ['x=1', /does not know/],
    ['', /malformed/],
    ['garbage', /malformed/],
  ])('refuses server-final %j', async (message, pattern) => {
    const client = createScramClient({ username: 'user', password: 'pencil', nonce: RFC7677.nonce });
    await client.clientFinal(RFC7677.serverFirst);
    const err = await expectAuthError(() => client.verifyServerFinal(message));
    expect(err.message).toMatch(pattern);
  });

  const nonce = RFC7677.nonce;
  it.each([
    ['nonce not extending ours', `r=someoneelse123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`, /does not extend/],
    ['nonce equal to ours', `r=${nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`, /does not extend/],
    ['missing salt', `r=${nonce}x,i=4096`, /lacks/],
    ['empty salt', `r=${nonce}x,s=,i=4096`, /invalid salt/],
    ['salt not base64', `r=${nonce}x,s=@@@@,i=4096`, /invalid salt/],
    ['zero iterations', `r=${nonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0`, /iteration/],
    ['negative iterations', `r=${nonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1`, /iteration/],
    ['huge iterations', `r=${nonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=${MAX_SCRAM_ITERATIONS + 1}`, /exceeds/],
    ['11-digit iterations', `r=${nonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999`, /iteration/],
    ['mandatory extension', `m=ext,r=${nonce}x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`, /extension/],
    ['non-printable nonce', `r=${nonce}\u0001,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096`, /printable/],
  ])('refuses server-first with %s', async (_name, message, pattern) => {
    const client = createScramClient({ password: 'pencil', nonce });
    const err = await expectAuthError(client.clientFinal(message));
    expect(err.message).toMatch(pattern);
  });

  it('refuses messages out of order', async () => {
    const client = createScramClient({ password: 'pencil', nonce: RFC7677.nonce });
    await expectAuthError(() => client.verifyServerFinal(RFC7677.serverFinal));
    const second = createScramClient({ username: 'user', password: 'pencil', nonce: RFC7677.nonce });
    await second.clientFinal(RFC7677.serverFirst);
    await expectAuthError(second.clientFinal(RFC7677.serverFirst));
  });

  it('escapes "," and "=" in the user name (RFC 5802 §5.1)', () => {
    const client = createScramClient({ username: 'a,b=c', password: 'x', nonce: 'n0nce' });
    expect(client.clientFirst).toBe('n,,n=a=2Cb=3Dc,r=n0nce');
    // PostgreSQL ignores the SCRAM user name; like libpq we send an empty one by default.
    expect(createScramClient({ password: 'x', nonce: 'n0nce' }).clientFirst).toBe('n,,n=,r=n0nce');
  });

  it('uses a fresh 18-byte nonce per exchange', () => {
    const a = createScramClient({ password: 'x' }).clientFirst;
    const b = createScramClient({ password: 'x' }).clientFirst;
    expect(a).not.toBe(b);
    expect(a).toMatch(/^n,,n=,r=[A-Za-z0-9+/]{24}$/);
  });

  it('completes an exchange with a reference server for any password, salt and iteration count', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }),
        fc.uint8Array({ minLength: 1, maxLength: 32 }),
        fc.integer({ min: 1, max: 64 }),
        async (password, saltBytes, iterations) => {
          const server = referenceServer(password, Buffer.from(saltBytes), iterations);
          const client = createScramClient({ password });
          const first = server.serverFirst(client.clientFirst);
          const final = await client.clientFinal(first.message);
          const serverFinal = server.verify(first.bare, first.message, final);
          client.verifyServerFinal(serverFinal);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('rejects every single-character change to a valid server signature', async () => {
    const server = referenceServer('pencil', Buffer.from('salt'), 16);
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.integer({ min: 1, max: 63 }), async (position, delta) => {
        const client = createScramClient({ password: 'pencil' });
        const first = server.serverFirst(client.clientFirst);
        const serverFinal = server.verify(first.bare, first.message, await client.clientFinal(first.message));
        const signature = serverFinal.slice(2);
        const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
        // The last two characters are padding/low bits; change one of the 42 that carry signature bits.
        const at = position % 42;
        const replaced = alphabet[(alphabet.indexOf(signature[at] as string) + delta) % 64] as string;
        const tampered = 'v=' + signature.slice(0, at) + replaced + signature.slice(at + 1);
        expect(() => client.verifyServerFinal(tampered)).toThrow(UpstreamError);
      }),
      { numRuns: 40 },
    );
  });

  it('only ever throws UpstreamError on arbitrary server-first messages', async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ maxLength: 200 }), async (message) => {
        const client = createScramClient({ password: 'pencil', nonce: 'abc' });
        try {
          await client.clientFinal(message);
        } catch (err) {
          expect(err).toBeInstanceOf(UpstreamError);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('saslPrep (as PostgreSQL applies it)', () => {
  it.each([
    ['ASCII is untouched', 'pencil', 'pencil'],
    ['ASCII controls are untouched (pg_saslprep skips ASCII)', 'a\u0007b', 'a\u0007b'],
    ['soft hyphen maps to nothing (RFC 4013 §3)', 'I\u00ADX', 'IX'],
    ['ordinal indicator normalizes (RFC 4013 §3)', '\u00AA', 'a'],
    ['roman numeral nine normalizes (RFC 4013 §3)', '\u2168', 'IX'],
    ['non-ASCII space maps to space', 'a\u00A0b', 'a b'],
    ['composed and decomposed forms agree', 'e\u0301', '\u00E9'],
    ['prohibited output falls back to the raw password', '\u00E9\u0007', '\u00E9\u0007'],
    ['private use falls back to the raw password', '\uE000x\u00E9', '\uE000x\u00E9'],
    ['all mapped to nothing falls back to the raw password', '\u00AD', '\u00AD'],
  ])('%s', (_name, input, expected) => {
    expect(saslPrep(input)).toBe(expected);
  });
});
