// PATCH `path` syntax (RFC 7644 §3.5.2: `attrPath / valuePath [subAttr]`) resolved to a target:
// an attribute, a filtered set of elements of a multi-valued attribute, or a whole extension.
import { MAX_PATH_LENGTH, extensionOf, parseAttributePath, parseSubAttribute, quote } from '../attribute-path.js';
import type { AttributePath } from '../attribute-path.js';
import { badRequest, ScimError, ScimType } from '../errors.js';
import { MAX_FILTER_LENGTH, parseElementFilter } from '../filter/parse.js';
import type { FilterNode } from '../filter/ast.js';
import type { ResourceType, SchemaDef } from '../schema.js';

export type PatchTarget =
  /** `userName`, `name.givenName`, `emails`, `urn:...:User:manager.value`. */
  | { readonly kind: 'attribute'; readonly path: AttributePath }
  /** `emails[type eq "work"]`, optionally with a sub-attribute: `emails[type eq "work"].value`. */
  | { readonly kind: 'filtered'; readonly path: AttributePath; readonly filter: FilterNode; readonly sub?: AttributePath }
  /** A bare extension schema URN: the whole extension object. */
  | { readonly kind: 'extension'; readonly schema: SchemaDef };

/** Resolves a PATCH path; anything unresolvable is a 400 `invalidPath` (D30 names included). */
export function parsePatchPath(text: string, rt: ResourceType): PatchTarget {
  if (text.length > MAX_PATH_LENGTH + MAX_FILTER_LENGTH) throw badRequest(ScimType.invalidPath, 'PATCH path too long');
  const ext = extensionOf(text, rt);
  if (ext !== undefined) return { kind: 'extension', schema: ext };

  const open = text.indexOf('[');
  if (open < 0) return { kind: 'attribute', path: parseAttributePath(text, rt) };

  // The filter may itself contain "]" inside a string literal; the last one closes the value path.
  const close = text.lastIndexOf(']');
  if (close < open) throw badRequest(ScimType.invalidPath, `Unbalanced "[" in PATCH path: ${quote(text)}`);
  const path = parseAttributePath(text.slice(0, open), rt);
  if (path.subAttribute !== undefined || path.def.type !== 'complex' || !path.def.multiValued) {
    throw badRequest(ScimType.invalidPath, `A value filter needs a multi-valued complex attribute: ${quote(text)}`);
  }
  const filter = asInvalidPath(() => parseElementFilter(text.slice(open + 1, close), rt, path));
  const rest = text.slice(close + 1);
  if (rest === '') return { kind: 'filtered', path, filter };
  if (!rest.startsWith('.')) throw badRequest(ScimType.invalidPath, `Unexpected text after "]" in PATCH path: ${quote(text)}`);
  return { kind: 'filtered', path, filter, sub: parseSubAttribute(path, rest.slice(1)) };
}

/** Filter errors inside a path are path errors for the client (RFC 7644 §3.5.2). */
function asInvalidPath<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ScimError && err.scimType === ScimType.invalidFilter) {
      throw badRequest(ScimType.invalidPath, `Invalid value filter in PATCH path: ${err.detail}`);
    }
    throw err;
  }
}
