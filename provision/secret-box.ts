// The personal login secrets at rest (docs/design.md §7 step 2): generated here, sealed with
// AES-256-GCM under provisioning.secretKey before they reach the store, opened only to log in.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { ProvisionError, ProvisionErrorCode } from './errors.js';

/** AES-256 key size; provisioning.secretKey is 32 bytes, base64. */
export const SECRET_KEY_BYTES = 32;
// NIST SP 800-38D §8.2: a 96-bit random IV per message; far fewer than 2^32 seals per key here.
const IV_BYTES = 12;
const TAG_BYTES = 16;
const VERSION = 'v1';

/**
 * A new login secret: 32 random bytes as base64url (43 ASCII characters, so SASLprep leaves it as
 * it is and no quoting is ever needed).
 */
export function newLoginSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * Seals and opens secrets for one key. The person's id is authenticated data: a sealed secret
 * copied onto another person's record does not open there.
 */
export class SecretBox {
  readonly #key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== SECRET_KEY_BYTES) {
      throw new ProvisionError(ProvisionErrorCode.secret, `provisioning.secretKey must be ${SECRET_KEY_BYTES} bytes`);
    }
    this.#key = Buffer.from(key);
  }

  /** `v1:` + base64(iv | tag | ciphertext). */
  seal(personId: string, secret: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(aad(personId));
    const body = Buffer.concat([cipher.update(secret, 'utf8'), cipher.final()]);
    return `${VERSION}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64')}`;
  }

  /** The plain secret; throws ProvisionError `PROVISION_SECRET` if the key or the record is wrong. */
  open(personId: string, sealed: string): string {
    const [version, payload] = sealed.split(':', 2);
    const raw = version === VERSION && payload !== undefined ? Buffer.from(payload, 'base64') : Buffer.alloc(0);
    if (raw.length <= IV_BYTES + TAG_BYTES) throw unreadable();
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(aad(personId));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch (err) {
      throw unreadable(err);
    }
  }
}

function aad(personId: string): Buffer {
  return Buffer.from(`rolegate personal login secret ${VERSION}\0${personId}`, 'utf8');
}

function unreadable(cause?: unknown): ProvisionError {
  return new ProvisionError(
    ProvisionErrorCode.secret,
    'a personal login secret does not open under provisioning.secretKey (a different key, or an altered record)',
    cause === undefined ? undefined : { cause },
  );
}
