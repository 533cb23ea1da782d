// The semantics of one PATCH operation (RFC 7644 §3.5.2.1-3) on a Draft, with the interop rules
// of docs/scim.md: D7 (add ≡ replace on single values, dotted/URN keys), D8-D10, D12, D28, D30.
import { AttributePathError, extensionOf, parseAttributePath } from '../attribute-path.js';
import type { AttributePath } from '../attribute-path.js';
import { badRequest, ScimType } from '../errors.js';
import type { FilterNode } from '../filter/ast.js';
import { isForbiddenKey, isRecord } from '../json.js';
import type { JsonObject } from '../json.js';
import type { AttributeDef, ResourceType, SchemaDef } from '../schema.js';
import {
  complexDelta,
  isClientSettable,
  isUnassigned,
  mergeComplex,
  normalizeElements,
  normalizeMember,
  normalizeMembers,
  normalizeSimple,
} from '../resource/values.js';
import type { Draft } from './draft.js';
import type { PatchTarget } from './path.js';

export type PatchOpName = 'add' | 'remove' | 'replace';

export interface OperationContext {
  /** The resource's id: a path-less value may repeat it (Okta group rename); another id is a mutability error. */
  readonly id?: string;
}

/** Applies one operation; throws ScimError and leaves the caller's `current` untouched on failure. */
export function applyOperation(d: Draft, op: PatchOpName, target: PatchTarget | undefined, value: unknown, ctx: OperationContext): void {
  if (target === undefined) {
    // RFC 7644 §3.5.2.2: "If 'path' is unspecified, the operation fails with ... 'noTarget'".
    if (op === 'remove') throw badRequest(ScimType.noTarget, 'A remove operation needs a path');
    applyPathless(d, op, value, ctx);
    return;
  }
  switch (target.kind) {
    case 'extension':
      applyExtension(d, op, target.schema, value);
      return;
    case 'attribute':
      applyAttribute(d, op, target.path, value);
      return;
    case 'filtered':
      applyFiltered(d, op, target.path, target.filter, target.sub, value);
      return;
  }
}

/** D30 for value keys: every dotted or colon-separated segment is checked. */
function checkKey(key: string): void {
  if (key.split(/[.:]/).some(isForbiddenKey)) throw badRequest(ScimType.invalidPath, 'Attribute name not allowed in PATCH value');
}

function tryResolve(key: string, rt: ResourceType): AttributePath | undefined {
  try {
    return parseAttributePath(key, rt);
  } catch (err) {
    if (err instanceof AttributePathError) return undefined;
    throw err;
  }
}

/**
 * RFC 7644 §3.5.2.1/3 without `path`: the value's keys name attributes (D7: dotted, URN-qualified or
 * nested). Envelope and server-managed keys are skipped like in a PUT body (Okta renames groups
 * with their own `id` in the value); keys naming no attribute are ignored (D5).
 */
function applyPathless(d: Draft, op: PatchOpName, value: unknown, ctx: OperationContext): void {
  if (!isRecord(value)) throw badRequest(ScimType.invalidValue, `"${op}" without a path needs an object value`);
  for (const [key, v] of Object.entries(value)) {
    checkKey(key);
    const lower = key.toLowerCase();
    if (lower === 'schemas') continue;
    const ext = extensionOf(key, d.rt);
    if (ext !== undefined) {
      applyExtension(d, op, ext, v);
      continue;
    }
    const path = tryResolve(key, d.rt);
    if (path === undefined) continue;
    if (path.attribute === 'id' && path.subAttribute === undefined) {
      if (ctx.id !== undefined && v !== ctx.id) throw badRequest(ScimType.mutability, 'id is readOnly and cannot be changed');
      continue;
    }
    if (path.attribute === 'meta') continue;
    applyAttribute(d, op, path, v);
  }
}

function applyExtension(d: Draft, op: PatchOpName, schema: SchemaDef, value: unknown): void {
  if (op === 'remove' || (op === 'replace' && isUnassigned(value))) {
    d.removeExtension(schema.id);
    return;
  }
  if (isUnassigned(value)) return;
  if (!isRecord(value)) throw badRequest(ScimType.invalidValue, `Invalid value for ${schema.id}: expected an object`);
  for (const [key, v] of Object.entries(value)) {
    checkKey(key);
    const path = tryResolve(`${schema.id}:${key}`, d.rt);
    if (path !== undefined) applyAttribute(d, op, path, v);
  }
}

function labelOf(path: AttributePath): string {
  return path.subAttribute === undefined ? path.attribute : `${path.attribute}.${path.subAttribute}`;
}

function checkWritable(def: AttributeDef, label: string): void {
  if (def.mutability === 'readOnly') throw badRequest(ScimType.mutability, `${label} is readOnly`);
}

function checkSubWritable(sub: AttributeDef, label: string): void {
  if (!isClientSettable(sub) || sub.mutability === 'immutable') {
    throw badRequest(ScimType.mutability, `${label} cannot be modified`);
  }
}

/** Required attributes (and `active`, which fails closed) can be changed but never unassigned. */
function unassign(d: Draft, path: AttributePath): void {
  if (path.def.required || (d.rt === 'User' && path.attribute === 'active')) {
    throw badRequest(ScimType.invalidValue, `${path.attribute} is required and cannot be removed or emptied`);
  }
  d.set(path, undefined);
}

function applyAttribute(d: Draft, op: PatchOpName, path: AttributePath, value: unknown): void {
  const def = path.def;
  const label = labelOf(path);
  checkWritable(def, label);
  // RFC 7643 §4.1.1: a password may be sent but rolegate never keeps one.
  if (def.mutability === 'writeOnly') return;

  if (path.subAttribute !== undefined) {
    const sub = path.subDef as AttributeDef;
    checkSubWritable(sub, label);
    if (def.multiValued) {
      if (op !== 'remove') {
        throw badRequest(ScimType.invalidPath, `${label} names every element; use a value filter such as ${def.name}[type eq "work"].${sub.name}`);
      }
      d.collection(path).update(undefined, (e) => without(e, sub.name));
      return;
    }
    const v = op === 'remove' ? undefined : normalizeSimple(sub, value, label);
    d.set(path, mergeComplex(d.get(path), [[sub.name, v]]));
    return;
  }

  if (def.multiValued) {
    applyMulti(d, op, path, value);
    return;
  }
  // D7: on a single-valued attribute add and replace are the same; D28: null or "" unassigns.
  if (op === 'remove' || isUnassigned(value)) {
    unassign(d, path);
    return;
  }
  if (def.type === 'complex') {
    // RFC 7644 §3.5.2.3: sub-attributes not given are left unchanged.
    d.set(path, mergeComplex(d.get(path), complexDelta(def, value, 'reject', label)));
    return;
  }
  d.set(path, normalizeSimple(def, value, label));
}

function isMembers(d: Draft, path: AttributePath): boolean {
  return d.rt === 'Group' && path.attribute === 'members';
}

function elementsOf(d: Draft, path: AttributePath, value: unknown): JsonObject[] {
  // MemberRef is an interface, so it lacks JsonObject's index signature; the shapes agree.
  return isMembers(d, path) ? (normalizeMembers(value, 'reject') as unknown as JsonObject[]) : normalizeElements(path.def, value, 'reject', path.attribute);
}

function applyMulti(d: Draft, op: PatchOpName, path: AttributePath, value: unknown): void {
  const collection = d.collection(path);
  switch (op) {
    case 'add':
      collection.append(elementsOf(d, path, value));
      return;
    case 'replace':
      collection.setAll(elementsOf(d, path, value));
      return;
    case 'remove':
      // RFC: no value removes every element; D8: a value lists the elements to remove.
      if (value === undefined || value === null) collection.clear();
      else collection.removeListed(isMembers(d, path) ? memberKeys(value) : normalizeElements(path.def, value, 'reject', path.attribute));
  }
}

/** D8: removal matches members on `value` alone; `type`, `display` and `$ref` are not checked. */
function memberKeys(value: unknown): JsonObject[] {
  const items = Array.isArray(value) ? value : [value];
  return items.map((item) => {
    if (typeof item === 'string' && item !== '') return { value: item };
    if (isRecord(item)) {
      let v: unknown;
      for (const [key, x] of Object.entries(item)) {
        checkKey(key);
        if (key.toLowerCase() === 'value') v = x;
      }
      if (typeof v === 'string' && v !== '') return { value: v };
    }
    throw badRequest(ScimType.invalidValue, 'Invalid value for members: each element to remove needs a "value"');
  });
}

function without(e: JsonObject, name: string): JsonObject | undefined {
  if (!Object.hasOwn(e, name)) return e;
  const { [name]: _removed, ...rest } = e;
  return Object.keys(rest).length > 0 ? rest : undefined;
}

/**
 * D10: the element a `replace` creates when a simple `sub eq value` filter matches nothing, e.g.
 * `emails[type eq "work"].value` creates `{type: "work", value}`.
 */
function seedOf(filter: FilterNode): JsonObject | undefined {
  if (filter.kind !== 'compare' || filter.op !== 'eq' || filter.value === null) return undefined;
  const sub = filter.path.subDef;
  if (sub === undefined || !isClientSettable(sub)) return undefined;
  return { [sub.name]: filter.value };
}

function applyFiltered(d: Draft, op: PatchOpName, path: AttributePath, filter: FilterNode, subPath: AttributePath | undefined, value: unknown): void {
  checkWritable(path.def, path.attribute);
  const collection = d.collection(path);
  const members = isMembers(d, path);
  const sub = subPath?.subDef;
  if (sub !== undefined) checkSubWritable(sub, labelOf(subPath as AttributePath));

  if (op === 'remove') {
    // D9: removing what is not there succeeds without change.
    collection.update(filter, sub === undefined ? () => undefined : (e) => without(e, sub.name));
    return;
  }

  const shape = (el: JsonObject | undefined): JsonObject | undefined =>
    el === undefined || !members ? el : (normalizeMember(el, 'reject') as unknown as JsonObject | undefined);

  if (sub !== undefined) {
    const label = labelOf(subPath as AttributePath);
    const v = isUnassigned(value) ? undefined : normalizeSimple(sub, value, label);
    const matched = collection.update(filter, (e) => shape(mergeComplex(e, [[sub.name, v]])));
    if (matched > 0 || v === undefined) return;
    const seed = seedOf(filter);
    if (seed === undefined) throw badRequest(ScimType.noTarget, `No ${path.attribute} element matches the PATCH path filter`);
    const created = shape(mergeComplex(seed, [[sub.name, v]]));
    if (created !== undefined) collection.append([created]);
    return;
  }

  if (isUnassigned(value)) {
    if (op === 'replace') collection.update(filter, () => undefined);
    return;
  }
  const delta = complexDelta(path.def, value, 'reject', path.attribute);
  // RFC 7644 §3.5.2.3: replace swaps each matching element; add merges into it.
  const matched = collection.update(filter, (e) =>
    shape(op === 'add' ? mergeComplex(e, delta) : mergeComplex(members ? { value: e.value } : undefined, delta)),
  );
  if (matched > 0) return;
  const seed = seedOf(filter);
  if (seed === undefined) throw badRequest(ScimType.noTarget, `No ${path.attribute} element matches the PATCH path filter`);
  const created = shape(mergeComplex(seed, delta));
  if (created !== undefined) collection.append([created]);
}
