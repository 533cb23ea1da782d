// Plain-JSON helpers for untrusted SCIM input: own-property reads, keys that could reach a
// prototype (docs/scim.md D30), and structural equality of canonical values.

export type JsonObject = { [key: string]: unknown };

/** A non-null, non-array object (what JSON.parse produces for `{...}`). */
export function isRecord(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads an own property only: never something inherited from Object.prototype. */
export function ownGet(obj: unknown, key: string): unknown {
  return isRecord(obj) && Object.hasOwn(obj, key) ? obj[key] : undefined;
}

/**
 * D30: `__proto__`, `constructor`, `prototype` and any name an empty object inherits
 * (`toString`, `hasOwnProperty`, ...), in any letter case because names match case-insensitively.
 * Those are the keys behind the scim-patch prototype-pollution advisories (GHSA-9m6g-wc8r-q59c).
 */
export function isForbiddenKey(key: string): boolean {
  const lower = key.toLowerCase();
  return key === 'prototype' || lower === 'prototype' || key in Object.prototype || INHERITED_LOWER.has(lower);
}

const INHERITED_LOWER: ReadonlySet<string> = new Set(
  Object.getOwnPropertyNames(Object.prototype).map((k) => k.toLowerCase()),
);

/** Structural equality of JSON values; object key order is irrelevant and an `undefined` property counts as absent. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (isRecord(a) && isRecord(b)) {
    for (const k of Object.keys(a)) if (!jsonEqual(a[k], ownGet(b, k))) return false;
    for (const k of Object.keys(b)) if (b[k] !== undefined && !Object.hasOwn(a, k)) return false;
    return true;
  }
  return false;
}
