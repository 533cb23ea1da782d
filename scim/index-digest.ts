// An order-independent digest of what the directory index holds (docs/design.md §8): each user and
// group adds a 128-bit hash of its canonical line to a sum (four 32-bit lanes, modulo 2^32), so once
// every entity has its contribution a write costs a hash per changed entity, never another pass over
// 100,000 people. Two indexes with the same sum hold the same users, groups and memberships.
import { hash } from 'node:crypto';

/** One entity's share of the sum. */
export type Contribution = readonly [number, number, number, number];

/** The contribution of a canonical line (JSON, so no two entities' lines can run into each other). */
export function contribution(line: string): Contribution {
  // SHA-1 is used as a well-mixed fingerprint here, not for security: nothing depends on collisions
  // being hard to make, only on accidental differences showing.
  const b = hash('sha1', line, 'buffer');
  return [b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8), b.readUInt32LE(12)];
}

export function userLine(u: { id: string; userName: string; active: boolean; emailKeys: readonly string[]; groupIds: readonly string[] }): string {
  return JSON.stringify(['u', u.id, u.userName, u.active, [...u.emailKeys].sort(), [...u.groupIds].sort()]);
}

export function groupLine(g: { id: string; displayName: string; externalId?: string }): string {
  return JSON.stringify(['g', g.id, g.displayName, g.externalId ?? null]);
}

/** The running sum of contributions. */
export class DigestSum {
  #a = 0;
  #b = 0;
  #c = 0;
  #d = 0;

  add([a, b, c, d]: Contribution): void {
    this.#a = (this.#a + a) >>> 0;
    this.#b = (this.#b + b) >>> 0;
    this.#c = (this.#c + c) >>> 0;
    this.#d = (this.#d + d) >>> 0;
  }

  remove([a, b, c, d]: Contribution): void {
    this.#a = (this.#a - a) >>> 0;
    this.#b = (this.#b - b) >>> 0;
    this.#c = (this.#c - c) >>> 0;
    this.#d = (this.#d - d) >>> 0;
  }

  hex(): string {
    return [this.#a, this.#b, this.#c, this.#d].map((l) => l.toString(16).padStart(8, '0')).join('');
  }
}
