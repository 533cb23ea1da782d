// Resolution of SCIM attribute paths (RFC 7644 §3.10 `[URN ":"] attr ["." subAttr]`) against the
// schemas, returning canonical spelling and the definitions that govern comparison and mutation.
import { ScimError, ScimType } from './errors.js';
import { isForbiddenKey } from './json.js';
import {
  COMMON_ATTRIBUTES,
  findAttribute,
  findSubAttribute,
  schemasOf,
} from './schema.js';
import type { AttributeDef, ResourceType, SchemaDef } from './schema.js';

export interface AttributePath {
  /** The schema URN the attribute belongs to; common attributes (id, externalId, meta) report the core URN. */
  readonly schema: string;
  /** Canonical attribute name, e.g. `userName`. */
  readonly attribute: string;
  /** Canonical sub-attribute name, e.g. `givenName` in `name.givenName`. */
  readonly subAttribute?: string;
  readonly def: AttributeDef;
  readonly subDef?: AttributeDef;
}

/** Longest accepted path text: generous for URN-qualified names, small enough to echo in errors. */
export const MAX_PATH_LENGTH = 512;

export interface PathOptions {
  /** scimType of the 400 thrown for an unknown or malformed path; `invalidPath` unless told. */
  readonly scimType?: ScimType;
}

/** Thrown for paths that do not resolve; `scimType` follows the caller's choice. */
export class AttributePathError extends ScimError {
  constructor(scimType: ScimType, detail: string) {
    super(400, scimType, detail);
    this.name = 'AttributePathError';
  }
}

/** Quotes untrusted text for an error detail, cut short so a hostile input is not echoed in full. */
export function quote(text: string): string {
  return JSON.stringify(text.length > 64 ? `${text.slice(0, 64)}…` : text);
}

/** True when `text` is exactly the URN of one of the resource type's extension schemas. */
export function extensionOf(text: string, rt: ResourceType): SchemaDef | undefined {
  const lower = text.toLowerCase();
  return schemasOf(rt).extensions.find((s) => s.id.toLowerCase() === lower);
}

// RFC 7643 §2.1 ATTRNAME = ALPHA *(nameChar); `$ref` is the one sub-attribute name outside it.
const NAME = /^(?:[A-Za-z][A-Za-z0-9_-]*|\$ref)$/;

/**
 * Resolves `text` to an attribute of `rt`: case-insensitive names, optional schema URN prefix
 * (core or extension), canonical spelling out. Throws AttributePathError (400, `invalidPath` unless
 * `opts.scimType` says otherwise) for unknown, malformed or prototype-reaching names (D30).
 */
export function parseAttributePath(text: string, rt: ResourceType, opts: PathOptions = {}): AttributePath {
  const scimType = opts.scimType ?? ScimType.invalidPath;
  const fail = (why: string): never => {
    throw new AttributePathError(scimType, `${why}: ${quote(text)}`);
  };
  if (text.length === 0) fail('Empty attribute path');
  if (text.length > MAX_PATH_LENGTH) fail('Attribute path too long');

  const { core, extensions } = schemasOf(rt);
  let schema: SchemaDef = core;
  let rest = text;
  if (text.slice(0, 4).toLowerCase() === 'urn:') {
    const lower = text.toLowerCase();
    const match = [core, ...extensions].find((s) => lower.startsWith(`${s.id.toLowerCase()}:`));
    if (match === undefined) {
      if (extensionOf(text, rt) !== undefined || lower === core.id.toLowerCase()) fail('A schema URN is not an attribute');
      fail('Unknown schema in attribute path');
    }
    schema = match as SchemaDef;
    rest = text.slice(schema.id.length + 1);
  }

  const parts = rest.split('.');
  if (parts.length > 2) fail('Attribute path has too many parts');
  const [name = '', subName] = parts;
  for (const part of parts) {
    if (isForbiddenKey(part)) fail('Attribute name not allowed');
    if (!NAME.test(part)) fail('Malformed attribute path');
  }

  let def = findAttribute(schema.attributes, name);
  if (def === undefined && schema === core) def = findAttribute(COMMON_ATTRIBUTES, name);
  if (def === undefined) fail(`Unknown attribute for ${rt}`);
  const found = def as AttributeDef;
  if (subName === undefined) return { schema: schema.id, attribute: found.name, def: found };

  const subDef = findSubAttribute(found, subName);
  if (subDef === undefined) {
    fail(found.type === 'complex' ? `Unknown sub-attribute of ${found.name}` : `${found.name} has no sub-attributes`);
  }
  const sub = subDef as AttributeDef;
  return { schema: schema.id, attribute: found.name, subAttribute: sub.name, def: found, subDef: sub };
}

/** Resolves a bare sub-attribute name of a complex attribute (inside `emails[...]`). */
export function parseSubAttribute(parent: AttributePath, name: string, opts: PathOptions = {}): AttributePath {
  const scimType = opts.scimType ?? ScimType.invalidPath;
  if (isForbiddenKey(name) || !NAME.test(name)) {
    throw new AttributePathError(scimType, `Malformed sub-attribute name: ${quote(name)}`);
  }
  const subDef = findSubAttribute(parent.def, name);
  if (subDef === undefined) {
    throw new AttributePathError(scimType, `Unknown sub-attribute of ${parent.attribute}: ${quote(name)}`);
  }
  return { schema: parent.schema, attribute: parent.attribute, subAttribute: subDef.name, def: parent.def, subDef };
}

/** The definition that governs values at this path: the sub-attribute's when there is one. */
export function leafDef(path: AttributePath): AttributeDef {
  return path.subDef ?? path.def;
}
