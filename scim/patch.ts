// SCIM PATCH (RFC 7644 §3.5.2): validates the PatchOp message and applies its operations, all or
// nothing, to a copy of the stored attributes. Pure: the store runs it inside its transaction.
import { badRequest, ScimError, ScimType } from './errors.js';
import { isRecord, jsonEqual } from './json.js';
import type { JsonObject } from './json.js';
import type { ScimAttributes } from './model.js';
import type { ResourceType } from './schema.js';
import { Draft } from './patch/draft.js';
import { applyOperation } from './patch/operations.js';
import type { OperationContext, PatchOpName } from './patch/operations.js';
import { parsePatchPath } from './patch/path.js';

export const PATCH_OP_URN = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

const OPS: ReadonlySet<string> = new Set<PatchOpName>(['add', 'remove', 'replace']);

/**
 * Applies a PatchOp body to `current` (for a Group, `current.members` holds its MemberRefs; for a
 * User, the stored attributes). `current` is never mutated; the first failing operation throws a
 * ScimError and nothing applies. `changed` is false when the result equals `current` (D11), so the
 * caller can leave `meta.lastModified` alone. `opts.id` lets a path-less value carry the resource's
 * own id (ignored) while rejecting any other id; without it every `id` in a value is ignored.
 */
export function applyPatch(
  rt: ResourceType,
  current: ScimAttributes,
  body: unknown,
  opts: OperationContext = {},
): { next: ScimAttributes; changed: boolean } {
  const operations = readOperations(body);
  const draft = new Draft(rt, current);
  operations.forEach((raw, index) => {
    try {
      const { op, path, value } = readOperation(raw);
      applyOperation(draft, op, path === undefined ? undefined : parsePatchPath(path, rt), value, opts);
    } catch (err) {
      if (err instanceof ScimError) throw new ScimError(err.status, err.scimType, `Operations[${index}]: ${err.detail}`);
      throw err;
    }
  });
  const next = draft.result();
  return { next, changed: !jsonEqual(current, next) };
}

/** A field of a JSON object by case-insensitive name: IdPs vary the case of `Operations`, `op`, `Path`. */
function field(obj: JsonObject, name: string): { present: boolean; value: unknown } {
  if (Object.hasOwn(obj, name)) return { present: true, value: obj[name] };
  for (const key of Object.keys(obj)) if (key.toLowerCase() === name.toLowerCase()) return { present: true, value: obj[key] };
  return { present: false, value: undefined };
}

/**
 * RFC 7644 §3.5.2: `schemas` must name the PatchOp message when given. Its absence is tolerated
 * (no IdP omits it, and refusing would protect nothing); a wrong URN list is refused.
 */
function readOperations(body: unknown): unknown[] {
  if (!isRecord(body)) throw badRequest(ScimType.invalidSyntax, 'The PATCH body must be a JSON object');
  const schemas = field(body, 'schemas');
  if (schemas.present) {
    const ok = Array.isArray(schemas.value) && schemas.value.some((s) => typeof s === 'string' && s.toLowerCase() === PATCH_OP_URN.toLowerCase());
    if (!ok) throw badRequest(ScimType.invalidSyntax, `The PATCH body's schemas must contain ${PATCH_OP_URN}`);
  }
  const ops = field(body, 'Operations').value;
  if (!Array.isArray(ops) || ops.length === 0) throw badRequest(ScimType.invalidSyntax, 'The PATCH body needs a non-empty "Operations" array');
  return ops;
}

function readOperation(raw: unknown): { op: PatchOpName; path: string | undefined; value: unknown } {
  if (!isRecord(raw)) throw badRequest(ScimType.invalidSyntax, 'An operation must be a JSON object');
  const op = field(raw, 'op').value;
  // D7: the op name is case-insensitive (Entra sends "Replace", "Add", "Remove").
  const name = typeof op === 'string' ? op.toLowerCase() : '';
  if (!OPS.has(name)) throw badRequest(ScimType.invalidSyntax, 'An operation\'s "op" must be "add", "remove" or "replace"');
  const path = field(raw, 'path').value;
  if (path !== undefined && path !== null && typeof path !== 'string') throw badRequest(ScimType.invalidPath, '"path" must be a string');
  const value = field(raw, 'value');
  if (name !== 'remove' && !value.present) throw badRequest(ScimType.invalidValue, `The "${name}" operation needs a "value"`);
  return { op: name as PatchOpName, path: typeof path === 'string' && path !== '' ? path : undefined, value: value.value };
}
