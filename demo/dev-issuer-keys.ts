// Signing keys for the development OIDC issuer: one ES256 and one RS256 key pair, made fresh with jose
// at every start and rotation, with RFC 7638 thumbprints as `kid` (so a new key always has a new kid).
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from 'jose';
import type { JWK } from 'jose';

/** Algorithms the development issuer signs with. */
export const DevSigningAlg = { ES256: 'ES256', RS256: 'RS256' } as const;
export type DevSigningAlg = (typeof DevSigningAlg)[keyof typeof DevSigningAlg];

/** A private signing JWK with `kid`, `alg` and `use: sig` set. */
export type DevSigningJwk = JWK & { kid: string; alg: DevSigningAlg; use: 'sig' };

/** Generates one private signing key per {@link DevSigningAlg}. */
export async function generateSigningKeys(): Promise<readonly DevSigningJwk[]> {
  return Promise.all(
    Object.values(DevSigningAlg).map(async (alg) => {
      const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
      const jwk = await exportJWK(privateKey);
      const kid = await calculateJwkThumbprint(jwk);
      return Object.freeze({ ...jwk, kid, alg, use: 'sig' as const });
    }),
  );
}
