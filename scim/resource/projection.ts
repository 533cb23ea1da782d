// The `attributes` / `excludedAttributes` query parameters (RFC 7644 §3.4.2.5) applied to a
// rendered resource, honouring `returned` (RFC 7643 §7): `id` and `schemas` always stay.
import { AttributePathError, extensionOf, parseAttributePath } from '../attribute-path.js';
import { isRecord } from '../json.js';
import type { JsonObject } from '../json.js';
import { COMMON_ATTRIBUTES, schemasOf } from '../schema.js';
import type { ResourceType } from '../schema.js';

/** Rendered-JSON key paths: `['name', 'givenName']`, `[enterpriseUrn, 'manager', 'value']`, `[enterpriseUrn]`. */
export type ProjectionPath = readonly string[];

export interface Projection {
  /** When set, only these (plus `returned: always`) are kept. */
  readonly attributes?: readonly ProjectionPath[];
  /** Removed, except `returned: always` attributes. */
  readonly excludedAttributes?: readonly ProjectionPath[];
}

// Longest list honoured; more names than any schema has is not a real request.
const MAX_NAMES = 200;

/**
 * Parses both query parameters: comma-separated, case-insensitive, URN-qualified names allowed,
 * a bare extension URN selects the whole extension. Unknown names are ignored, as RFC 7644
 * §3.4.2.5 asks for `excludedAttributes`; for `attributes` that only narrows the response.
 */
export function parseProjection(q: { attributes?: string; excludedAttributes?: string }, rt: ResourceType): Projection {
  const attributes = parseList(q.attributes, rt);
  const excludedAttributes = parseList(q.excludedAttributes, rt);
  return {
    ...(attributes === undefined ? {} : { attributes }),
    ...(excludedAttributes === undefined ? {} : { excludedAttributes }),
  };
}

function parseList(raw: unknown, rt: ResourceType): ProjectionPath[] | undefined {
  if (typeof raw !== 'string') return undefined;
  const names = raw.split(',', MAX_NAMES).map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) return undefined;
  const core = schemasOf(rt).core.id;
  const out: ProjectionPath[] = [];
  for (const name of names) {
    const ext = extensionOf(name, rt);
    if (ext !== undefined) {
      out.push([ext.id]);
      continue;
    }
    try {
      const p = parseAttributePath(name, rt);
      const head = p.schema === core ? [p.attribute] : [p.schema, p.attribute];
      out.push(p.subAttribute === undefined ? head : [...head, p.subAttribute]);
    } catch (err) {
      if (!(err instanceof AttributePathError)) throw err;
    }
  }
  return out;
}

type Tree = Map<string, Tree | true>;

function treeOf(paths: readonly ProjectionPath[]): Tree {
  const root: Tree = new Map();
  for (const path of paths) {
    let node = root;
    for (let i = 0; i < path.length; i++) {
      const key = path[i] as string;
      const existing = node.get(key);
      if (existing === true) break;
      if (i === path.length - 1) {
        node.set(key, true);
        break;
      }
      const child: Tree = existing ?? new Map();
      node.set(key, child);
      node = child;
    }
  }
  return root;
}

const ALWAYS: ReadonlySet<string> = new Set([
  'schemas',
  ...COMMON_ATTRIBUTES.filter((d) => d.returned === 'always').map((d) => d.name),
]);

/** Applies a projection to a rendered resource; the input is not modified. */
export function project(resource: Record<string, unknown>, projection: Projection, rt: ResourceType): Record<string, unknown> {
  let out: JsonObject = resource;
  if (projection.attributes !== undefined) out = include(out, treeOf(projection.attributes), true) ?? {};
  if (projection.excludedAttributes !== undefined) out = exclude(out, treeOf(projection.excludedAttributes), true) ?? {};
  if (out === resource) return resource;
  return withSchemas(out, resource, rt);
}

function include(obj: JsonObject, tree: Tree, top: boolean): JsonObject | undefined {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(obj)) {
    const node = tree.get(key);
    if ((top && ALWAYS.has(key)) || node === true) out[key] = value;
    else if (node !== undefined) {
      const picked = pick(value, (v) => include(v, node, false));
      if (picked !== undefined) out[key] = picked;
    }
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function exclude(obj: JsonObject, tree: Tree, top: boolean): JsonObject | undefined {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(obj)) {
    const node = tree.get(key);
    if (node === undefined || (top && ALWAYS.has(key))) out[key] = value;
    else if (node !== true) {
      const kept = pick(value, (v) => exclude(v, node, false));
      if (kept !== undefined) out[key] = kept;
    }
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** Applies `fn` to an object or to each object of an array, dropping what becomes empty. */
function pick(value: unknown, fn: (v: JsonObject) => JsonObject | undefined): unknown {
  if (Array.isArray(value)) {
    const items = value.filter(isRecord).map(fn).filter((v) => v !== undefined);
    return items.length > 0 ? items : undefined;
  }
  return isRecord(value) ? fn(value) : undefined;
}

/** `schemas` lists only the extensions still present (RFC 7643 §3). */
function withSchemas(out: JsonObject, original: JsonObject, rt: ResourceType): JsonObject {
  const schemas = Array.isArray(original.schemas) ? original.schemas : [schemasOf(rt).core.id];
  const core = schemasOf(rt).core.id;
  const result: JsonObject = { schemas: schemas.filter((s) => s === core || Object.hasOwn(out, String(s))) };
  for (const [key, value] of Object.entries(out)) if (key !== 'schemas') result[key] = value;
  return result;
}
