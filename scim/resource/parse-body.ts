// POST/PUT bodies (RFC 7644 §3.3, §3.5.1) to canonical stored attributes: case-insensitive and
// URN-qualified names, unknown and readOnly attributes ignored (D5), passwords discarded.
import { AttributePathError, extensionOf, parseAttributePath } from '../attribute-path.js';
import type { AttributePath } from '../attribute-path.js';
import { badRequest, ScimType } from '../errors.js';
import { isForbiddenKey, isRecord } from '../json.js';
import type { JsonObject } from '../json.js';
import type { MemberRef, ScimAttributes } from '../model.js';
import { schemasOf } from '../schema.js';
import type { ResourceType } from '../schema.js';
import {
  complexDelta,
  enforceSinglePrimary,
  mergeComplex,
  normalizeComplex,
  normalizeElements,
  normalizeMembers,
  normalizeSimple,
} from './values.js';

// Never taken from a body: server-managed (id, meta, groups: RFC 7644 §3.5.1 "SHALL be ignored"),
// envelope (schemas), or never kept (password is accepted and dropped, RFC 7643 §4.1.1 returned never).
const SKIPPED_KEYS: ReadonlySet<string> = new Set(['schemas', 'id', 'meta', 'groups', 'password']);

/**
 * Parses a User POST (`create`) or PUT (`replace`) body; `userName` is required. An omitted (or null)
 * `active` is true on create (D6) and stays omitted on replace, where the service keeps the stored
 * value (D32): a replace must never re-enable a deactivated person by accident.
 */
export function parseUserBody(body: unknown, op: 'create' | 'replace'): ScimAttributes {
  const { attributes } = parseBody('User', body);
  const userName = attributes.userName;
  if (typeof userName !== 'string' || userName.trim() === '') {
    throw badRequest(ScimType.invalidValue, 'userName is required and must be a non-empty string');
  }
  if (attributes.active === undefined && op === 'create') attributes.active = true;
  return attributes;
}

/** Parses a Group POST/PUT body: `displayName` required; members are Users, de-duplicated by value (D12). */
export function parseGroupBody(body: unknown): { attributes: ScimAttributes; members: MemberRef[] } {
  const { attributes, members } = parseBody('Group', body);
  const displayName = attributes.displayName;
  if (typeof displayName !== 'string' || displayName.trim() === '') {
    throw badRequest(ScimType.invalidValue, 'displayName is required and must be a non-empty string');
  }
  return { attributes, members };
}

function parseBody(rt: ResourceType, body: unknown): { attributes: JsonObject; members: MemberRef[] } {
  if (!isRecord(body)) throw badRequest(ScimType.invalidSyntax, `The ${rt} body must be a JSON object`);
  const out: JsonObject = {};
  let members: MemberRef[] = [];
  for (const [key, value] of Object.entries(body)) {
    // D30: ignored here (POST/PUT); only schema-spelled keys are ever written.
    if (isForbiddenKey(key)) continue;
    if (SKIPPED_KEYS.has(key.toLowerCase())) continue;
    const ext = extensionOf(key, rt);
    if (ext !== undefined) {
      if (value === null || value === undefined) continue;
      if (!isRecord(value)) throw badRequest(ScimType.invalidValue, `Invalid value for ${ext.id}: expected an object`);
      for (const [subKey, subValue] of Object.entries(value)) {
        if (isForbiddenKey(subKey)) continue;
        const path = resolve(`${ext.id}:${subKey}`, rt);
        if (path !== undefined) assign(out, path, subValue, rt);
      }
      continue;
    }
    const path = resolve(key, rt);
    if (path === undefined) continue;
    if (rt === 'Group' && path.attribute === 'members') {
      if (path.subAttribute === undefined) members = normalizeMembers(value, 'ignore');
      continue;
    }
    assign(out, path, value, rt);
  }
  return { attributes: out, members };
}

/** D5: names that do not resolve are ignored, not errors. */
function resolve(key: string, rt: ResourceType): AttributePath | undefined {
  try {
    return parseAttributePath(key, rt);
  } catch (err) {
    if (err instanceof AttributePathError) return undefined;
    throw err;
  }
}

function assign(out: JsonObject, path: AttributePath, value: unknown, rt: ResourceType): void {
  const def = path.def;
  // Server-managed or never stored, also when URN-qualified (`urn:...:User:groups`).
  if (def.mutability === 'readOnly' || def.mutability === 'writeOnly') return;
  const container = containerOf(out, path.schema, rt);
  const label = path.subAttribute === undefined ? def.name : `${def.name}.${path.subAttribute}`;
  let next: unknown;
  if (path.subAttribute !== undefined) {
    // `emails.value` names every element at once: meaningless in a body, so ignored like an unknown name.
    if (def.multiValued) return;
    next = mergeComplex(container[def.name], complexDelta(def, { [path.subAttribute]: value }, 'ignore', label));
  } else if (def.multiValued) {
    const items = normalizeElements(def, value, 'ignore', label);
    next = items.length > 0 ? enforceSinglePrimary(items) : undefined;
  } else if (def.type === 'complex') {
    next = normalizeComplex(def, value, 'ignore', label);
  } else {
    next = normalizeSimple(def, value, label);
  }
  if (next === undefined) delete container[def.name];
  else container[def.name] = next;
  if (container !== out && Object.keys(container).length === 0) delete out[path.schema];
}

/** The object that holds the attribute: the body itself, or the extension's object under its URN key. */
function containerOf(out: JsonObject, schema: string, rt: ResourceType): JsonObject {
  if (schema === schemasOf(rt).core.id) return out;
  const existing = out[schema];
  if (isRecord(existing)) return existing;
  const created: JsonObject = {};
  out[schema] = created;
  return created;
}
