// Ed25519 checkpoint signatures (docs/design.md §6): the signed message, the key id, loading the
// `audit.signingKey` PEM and checking a checkpoint against a public key.
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { CodedError } from '../lib/coded-error.js';

/**
 * What a checkpoint signs: a fixed prefix (so the signature means nothing elsewhere), the instance
 * whose chain it is, the seq and the hash of the line it vouches for. The hash commits to every line
 * before it, so the signature covers the whole chain up to `upto`.
 */
export function checkpointMessage(instance: string, upto: number, head: string): Buffer {
  return Buffer.from(`rolegate-audit-checkpoint-v1\n${instance}\n${upto}\n${head}`, 'utf8');
}

/** The first 16 hex digits of SHA-256 over the public key's SPKI DER. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex').slice(0, 16);
}

export interface CheckpointSigner {
  readonly keyId: string;
  /** Base64 Ed25519 signature over the checkpoint message. */
  sign(instance: string, upto: number, head: string): string;
}

/** A signer from an Ed25519 private key in PEM; throws `audit_signing_key` for anything else. */
export function signerFromPem(pem: string | Buffer): CheckpointSigner {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new CodedError('audit_signing_key', 'audit.signingKey is not a PEM private key', { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new CodedError('audit_signing_key', `audit.signingKey must be an Ed25519 key (it is ${key.asymmetricKeyType ?? 'unknown'})`);
  }
  const keyId = keyIdOf(createPublicKey(key));
  return {
    keyId,
    sign: (instance, upto, head) => sign(null, checkpointMessage(instance, upto, head), key).toString('base64'),
  };
}

/** A public key for `verify --public-key`: an Ed25519 public key, or the private key it belongs to. */
export function publicKeyFromPem(pem: string | Buffer): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new CodedError('audit_public_key', 'not a PEM public key', { cause: err });
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new CodedError('audit_public_key', 'the public key is not an Ed25519 key');
  return key;
}

/** True when `sig` is a valid signature of the checkpoint by `key`. */
export function verifyCheckpoint(key: KeyObject, instance: string, upto: number, head: string, sig: string): boolean {
  try {
    return verify(null, checkpointMessage(instance, upto, head), key, Buffer.from(sig, 'base64'));
  } catch {
    return false;
  }
}
