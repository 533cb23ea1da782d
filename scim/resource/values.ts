// Schema-driven normalization of client-supplied attribute values into canonical stored form,
// shared by POST/PUT body parsing and the PATCH engine. Output objects only ever get keys spelled
// by the schema, so no client key can reach a prototype (D30).
import { badRequest, ScimType } from '../errors.js';
import { isForbiddenKey, isRecord } from '../json.js';
import type { JsonObject } from '../json.js';
import type { MemberRef } from '../model.js';
import { findSubAttribute } from '../schema.js';
import type { AttributeDef } from '../schema.js';

/** How keys that could reach a prototype are treated inside values: PATCH rejects, POST/PUT ignore (D30). */
export type ForbiddenKeys = 'reject' | 'ignore';

/** D28: `null` and `""` mean "unassigned". */
export function isUnassigned(v: unknown): boolean {
  return v === null || v === undefined || v === '';
}

function invalidValue(label: string, expected: string): never {
  throw badRequest(ScimType.invalidValue, `Invalid value for ${label}: expected ${expected}`);
}

function checkKey(key: string, mode: ForbiddenKeys, label: string): boolean {
  if (!isForbiddenKey(key)) return true;
  if (mode === 'reject') throw badRequest(ScimType.invalidPath, `Attribute name not allowed in ${label}`);
  return false;
}

/** D6: JSON booleans and the strings "true"/"false" in any case; nothing else. */
export function coerceBoolean(v: unknown, label: string): boolean {
  if (typeof v === 'boolean') return v;
  if (typeof v === 'string') {
    const lower = v.toLowerCase();
    if (lower === 'true') return true;
    if (lower === 'false') return false;
  }
  return invalidValue(label, 'true or false');
}

/** A simple (non-complex) value in canonical form, or `undefined` when unassigned (D28). Strings are kept exactly (D31). */
export function normalizeSimple(def: AttributeDef, raw: unknown, label: string): unknown {
  if (isUnassigned(raw)) return undefined;
  switch (def.type) {
    case 'string':
    case 'reference':
    case 'binary':
      return typeof raw === 'string' ? raw : invalidValue(label, 'a string');
    case 'boolean':
      return coerceBoolean(raw, label);
    case 'dateTime':
      return typeof raw === 'string' && !Number.isNaN(Date.parse(raw)) ? raw : invalidValue(label, 'an RFC 3339 dateTime');
    case 'integer':
      return typeof raw === 'number' && Number.isSafeInteger(raw) ? raw : invalidValue(label, 'an integer');
    case 'decimal':
      return typeof raw === 'number' && Number.isFinite(raw) ? raw : invalidValue(label, 'a number');
    case 'complex':
      return invalidValue(label, 'a sub-attribute');
  }
}

/** Sub-attributes a client may set: not computed (`$ref`) and not readOnly. */
export function isClientSettable(sub: AttributeDef): boolean {
  return sub.name !== '$ref' && sub.mutability !== 'readOnly';
}

/**
 * The sub-attribute assignments of a complex value, in client order: `[name, value]` with
 * `undefined` for an unassignment. Unknown and server-computed sub-attributes are skipped. A bare
 * string for an attribute with a `value` sub-attribute means `{ value }` (Entra sends `manager` so).
 */
export function complexDelta(def: AttributeDef, raw: unknown, mode: ForbiddenKeys, label: string): [string, unknown][] {
  if (typeof raw === 'string' && findSubAttribute(def, 'value') !== undefined) raw = { value: raw };
  if (!isRecord(raw)) return invalidValue(label, 'an object');
  const out: [string, unknown][] = [];
  for (const [key, v] of Object.entries(raw)) {
    if (!checkKey(key, mode, label)) continue;
    const sub = findSubAttribute(def, key);
    if (sub === undefined || !isClientSettable(sub)) continue;
    out.push([sub.name, normalizeSimple(sub, v, `${label}.${sub.name}`)]);
  }
  return out;
}

/** Applies a delta to an (optional) existing complex value; `undefined` when nothing is left. */
export function mergeComplex(existing: unknown, delta: readonly [string, unknown][]): JsonObject | undefined {
  const out: JsonObject = isRecord(existing) ? { ...existing } : {};
  for (const [name, v] of delta) {
    if (v === undefined) delete out[name];
    else out[name] = v;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** A whole complex value (single-valued attribute or one element); `undefined` when empty. */
export function normalizeComplex(def: AttributeDef, raw: unknown, mode: ForbiddenKeys, label: string): JsonObject | undefined {
  if (isUnassigned(raw)) return undefined;
  return mergeComplex(undefined, complexDelta(def, raw, mode, label));
}

/**
 * Most elements one User multi-valued attribute (emails, roles, ...) may hold. De-duplication
 * compares elements pairwise, so this bound keeps a hostile body from costing quadratic time.
 */
export const MAX_ELEMENTS = 1000;

/** The elements of a multi-valued attribute; a lone element is accepted as a one-element list. */
export function normalizeElements(def: AttributeDef, raw: unknown, mode: ForbiddenKeys, label: string): JsonObject[] {
  if (isUnassigned(raw)) return [];
  const items = Array.isArray(raw) ? raw : [raw];
  if (items.length > MAX_ELEMENTS) invalidValue(label, `at most ${MAX_ELEMENTS} elements`);
  const out: JsonObject[] = [];
  for (const item of items) {
    const el = normalizeComplex(def, item, mode, label);
    if (el !== undefined) out.push(el);
  }
  return out;
}

/** One group member (D12): a non-empty `value`, `type` absent or "User", `display` kept as sent. */
export function normalizeMember(raw: unknown, mode: ForbiddenKeys): MemberRef | undefined {
  if (isUnassigned(raw)) return undefined;
  if (typeof raw === 'string') return { value: raw };
  if (!isRecord(raw)) return invalidValue('members', 'objects with a "value"');
  let value: unknown;
  let display: unknown;
  for (const key of Object.keys(raw)) {
    const v = raw[key];
    // Hot path (10,000-member PATCHes): the usual spellings skip the forbidden-key check and lowercasing.
    const lower = key === 'value' || key === 'display' || key === 'type' ? key : checkKey(key, mode, 'members') ? key.toLowerCase() : '';
    if (lower === 'value') value = v;
    else if (lower === 'display') display = v;
    else if (lower === 'type' && !isUnassigned(v)) {
      // D12: nested groups are not provisioned; anything but a User member is refused.
      if (typeof v !== 'string' || v.toLowerCase() !== 'user') {
        throw badRequest(ScimType.invalidValue, 'Group members must be Users (type "User"); nested groups are not supported');
      }
    }
  }
  if (typeof value !== 'string' || value === '') return invalidValue('members.value', 'a non-empty string');
  if (isUnassigned(display)) return { value };
  if (typeof display !== 'string') return invalidValue('members.display', 'a string');
  return { value, display };
}

/** Members de-duplicated by `value` (first occurrence kept), in order. */
export function normalizeMembers(raw: unknown, mode: ForbiddenKeys): MemberRef[] {
  if (isUnassigned(raw)) return [];
  const items = Array.isArray(raw) ? raw : [raw];
  const seen = new Set<string>();
  const out: MemberRef[] = [];
  for (const item of items) {
    const m = normalizeMember(item, mode);
    if (m !== undefined && !seen.has(m.value)) {
      seen.add(m.value);
      out.push(m);
    }
  }
  return out;
}

/**
 * RFC 7643 §2.4: `primary: true` appears at most once. The preferred element (the one just
 * written) keeps it, else the last one; the others get `primary: false`.
 */
export function enforceSinglePrimary(items: readonly JsonObject[], preferred?: JsonObject): JsonObject[] {
  let count = 0;
  let last: JsonObject | undefined;
  for (const el of items) {
    if (el.primary === true) {
      count++;
      last = el;
    }
  }
  if (count <= 1) return [...items];
  const winner = preferred !== undefined && preferred.primary === true ? preferred : last;
  return items.map((el) => (el.primary === true && el !== winner ? { ...el, primary: false } : el));
}
