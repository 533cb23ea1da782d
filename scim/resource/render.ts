// Stored records to SCIM resource JSON (RFC 7643 §3, §4): schema-ordered, only schema-known
// attributes, computed `$ref`s and `meta`, never a password and never a JSON null (D28).
import { isRecord, ownGet } from '../json.js';
import type { JsonObject } from '../json.js';
import type { GroupMembership, GroupRecord, UserRecord } from '../model.js';
import { ENTERPRISE_USER_SCHEMA, ENTERPRISE_USER_URN, GROUP_SCHEMA_URN, USER_SCHEMA, USER_SCHEMA_URN } from '../schema.js';
import type { AttributeDef } from '../schema.js';

/** Renders a User; `groups` are its direct memberships (D24: omitted when there are none). */
export function renderUser(rec: UserRecord, groups: readonly GroupMembership[], baseUrl: string): Record<string, unknown> {
  const base = trimSlash(baseUrl);
  const out: JsonObject = { schemas: [USER_SCHEMA_URN], id: rec.id };
  const externalId = cleanSimple(ownGet(rec.attributes, 'externalId'));
  if (externalId !== undefined) out.externalId = externalId;
  for (const def of USER_SCHEMA.attributes) {
    if (def.name === 'groups') {
      if (groups.length > 0) {
        out.groups = groups.map((g) => ({
          value: g.groupId,
          display: g.displayName,
          $ref: `${base}/Groups/${encodeURIComponent(g.groupId)}`,
          type: 'direct',
        }));
      }
      continue;
    }
    // RFC 7643 §4.1.1: returned "never".
    if (def.returned === 'never') continue;
    const value = clean(def, ownGet(rec.attributes, def.name));
    if (value !== undefined) out[def.name] = value;
  }
  const enterprise = renderEnterprise(ownGet(rec.attributes, ENTERPRISE_USER_URN), base);
  if (enterprise !== undefined) {
    out[ENTERPRISE_USER_URN] = enterprise;
    out.schemas = [USER_SCHEMA_URN, ENTERPRISE_USER_URN];
  }
  out.meta = meta('User', rec, `${base}/Users/${encodeURIComponent(rec.id)}`);
  return out;
}

/** Renders a Group with its members as `{value, display?, $ref, type: "User"}` (D23). */
export function renderGroup(rec: GroupRecord, baseUrl: string): Record<string, unknown> {
  const base = trimSlash(baseUrl);
  const out: JsonObject = { schemas: [GROUP_SCHEMA_URN], id: rec.id };
  const externalId = cleanSimple(ownGet(rec.attributes, 'externalId'));
  if (externalId !== undefined) out.externalId = externalId;
  const displayName = cleanSimple(ownGet(rec.attributes, 'displayName'));
  if (displayName !== undefined) out.displayName = displayName;
  if (rec.members.length > 0) {
    out.members = rec.members.map((m) => {
      const member: JsonObject = { value: m.value };
      if (typeof m.display === 'string' && m.display !== '') member.display = m.display;
      member.$ref = `${base}/Users/${encodeURIComponent(m.value)}`;
      member.type = 'User';
      return member;
    });
  }
  out.meta = meta('Group', rec, `${base}/Groups/${encodeURIComponent(rec.id)}`);
  return out;
}

function meta(resourceType: string, rec: { created: string; lastModified: string }, location: string): JsonObject {
  return { resourceType, created: rec.created, lastModified: rec.lastModified, location };
}

function trimSlash(url: string): string {
  return url.endsWith('/') ? url.slice(0, -1) : url;
}

function renderEnterprise(raw: unknown, base: string): JsonObject | undefined {
  if (!isRecord(raw)) return undefined;
  const out: JsonObject = {};
  for (const def of ENTERPRISE_USER_SCHEMA.attributes) {
    const value = clean(def, ownGet(raw, def.name));
    if (value === undefined) continue;
    if (def.name === 'manager' && isRecord(value) && typeof value.value === 'string') {
      value.$ref = `${base}/Users/${encodeURIComponent(value.value)}`;
    }
    out[def.name] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function cleanSimple(v: unknown): unknown {
  if (v === null || v === undefined || v === '') return undefined;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  return undefined;
}

/** A fresh copy of a stored value with only schema-known parts; `undefined` when empty. */
function clean(def: AttributeDef, v: unknown): unknown {
  if (def.multiValued) {
    if (!Array.isArray(v)) return undefined;
    const items = v.map((e) => cleanComplex(def, e)).filter((e) => e !== undefined);
    return items.length > 0 ? items : undefined;
  }
  return def.type === 'complex' ? cleanComplex(def, v) : cleanSimple(v);
}

function cleanComplex(def: AttributeDef, v: unknown): JsonObject | undefined {
  if (!isRecord(v)) return undefined;
  const out: JsonObject = {};
  for (const sub of def.subAttributes ?? []) {
    const value = cleanSimple(ownGet(v, sub.name));
    if (value !== undefined) out[sub.name] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}
