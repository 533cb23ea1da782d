// The SCIM filter parser (RFC 7644 §3.4.2.2 plus docs/scim.md D15/D16): recursive descent over tokens
// with precedence not > and > or, type-checked against the schema, bounded in length and depth.
import { AttributePathError, leafDef, parseAttributePath, parseSubAttribute, quote } from '../attribute-path.js';
import type { AttributePath } from '../attribute-path.js';
import { badRequest, ScimError, ScimType } from '../errors.js';
import { findSubAttribute } from '../schema.js';
import type { ResourceType } from '../schema.js';
import type { CompareNode, CompareOp, FilterNode, FilterValue } from './ast.js';
import { tokenize } from './lexer.js';
import type { Token } from './lexer.js';

export type { AndNode, CompareNode, CompareOp, FilterNode, FilterValue, NotNode, OrNode, PresentNode, ValuePathNode } from './ast.js';

/** Longest filter accepted; IdP filters are a few dozen characters. */
export const MAX_FILTER_LENGTH = 4096;
/** Deepest nesting of parentheses, `not` and value paths, so hostile input cannot exhaust the stack. */
export const MAX_FILTER_DEPTH = 64;

const COMPARE_OPS: ReadonlySet<string> = new Set<CompareOp>(['eq', 'ne', 'co', 'sw', 'ew', 'gt', 'ge', 'lt', 'le']);
const ORDERING_OPS: ReadonlySet<CompareOp> = new Set<CompareOp>(['gt', 'ge', 'lt', 'le']);
const SUBSTRING_OPS: ReadonlySet<CompareOp> = new Set<CompareOp>(['co', 'sw', 'ew']);
// RFC 8259 number grammar.
const NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

function invalid(detail: string): ScimError {
  return badRequest(ScimType.invalidFilter, `Invalid filter: ${detail}`);
}

/** Parses a `filter` query parameter for `rt`; any problem is a 400 `invalidFilter`. */
export function parseFilter(text: string, rt: ResourceType): FilterNode {
  return parseWith(text, rt, undefined);
}

/**
 * Parses the inside of a value path (`type eq "work"` in `emails[type eq "work"]`), whose
 * attribute names are sub-attributes of `parent`. Used for PATCH paths (RFC 7644 §3.5.2).
 */
export function parseElementFilter(text: string, rt: ResourceType, parent: AttributePath): FilterNode {
  return parseWith(text, rt, parent);
}

function parseWith(text: string, rt: ResourceType, scope: AttributePath | undefined): FilterNode {
  if (typeof text !== 'string') throw invalid('the filter must be a single string');
  if (text.length > MAX_FILTER_LENGTH) throw invalid(`longer than ${MAX_FILTER_LENGTH} characters`);
  const parser = new Parser(tokenize(text), rt, scope);
  return parser.parseAll();
}

class Parser {
  readonly #tokens: readonly Token[];
  readonly #rt: ResourceType;
  #scope: AttributePath | undefined;
  #i = 0;
  #depth = 0;

  constructor(tokens: readonly Token[], rt: ResourceType, scope: AttributePath | undefined) {
    this.#tokens = tokens;
    this.#rt = rt;
    this.#scope = scope;
  }

  parseAll(): FilterNode {
    if (this.#tokens.length === 0) throw invalid('empty filter');
    const node = this.#parseOr();
    const extra = this.#tokens[this.#i];
    if (extra !== undefined) throw invalid(`unexpected ${describe(extra)} at position ${extra.pos}; expected "and", "or" or the end`);
    return node;
  }

  #parseOr(): FilterNode {
    const operands = [this.#parseAnd()];
    while (this.#atKeyword('or')) {
      this.#i++;
      operands.push(this.#parseAnd());
    }
    return operands.length === 1 ? (operands[0] as FilterNode) : { kind: 'or', operands };
  }

  #parseAnd(): FilterNode {
    const operands = [this.#parseUnary()];
    while (this.#atKeyword('and')) {
      this.#i++;
      operands.push(this.#parseUnary());
    }
    return operands.length === 1 ? (operands[0] as FilterNode) : { kind: 'and', operands };
  }

  #parseUnary(): FilterNode {
    if (this.#atKeyword('not')) {
      this.#i++;
      this.#enter();
      const operand = this.#parseUnary();
      this.#depth--;
      return { kind: 'not', operand };
    }
    return this.#parsePrimary();
  }

  #parsePrimary(): FilterNode {
    const tok = this.#next('an attribute or "("');
    if (tok.type === '(') {
      this.#enter();
      const node = this.#parseOr();
      this.#expect(')');
      this.#depth--;
      return node;
    }
    if (tok.type !== 'word') throw invalid(`unexpected ${describe(tok)} at position ${tok.pos}; expected an attribute or "("`);
    const lower = tok.text.toLowerCase();
    if (lower === 'and' || lower === 'or' || COMPARE_OPS.has(lower) || lower === 'pr') {
      throw invalid(`unexpected ${describe(tok)} at position ${tok.pos}; expected an attribute`);
    }
    return this.#parseAttributeExpression(tok);
  }

  #parseAttributeExpression(tok: Token & { type: 'word' }): FilterNode {
    const path = this.#resolve(tok);
    const peek = this.#tokens[this.#i];
    if (peek?.type !== '[') return this.#parseComparison(path);

    if (this.#scope !== undefined) throw invalid(`nested value filter at position ${peek.pos}`);
    if (path.subAttribute !== undefined || path.def.type !== 'complex') {
      throw invalid(`a value filter needs a complex attribute, not ${quote(tok.text)}`);
    }
    this.#i++;
    this.#enter();
    this.#scope = path;
    let filter = this.#parseOr();
    this.#expect(']');
    // D16: `emails[type eq "work"].value eq "x"` means some element matches both conditions.
    const after = this.#tokens[this.#i];
    if (after?.type === 'word' && after.text.startsWith('.')) {
      this.#i++;
      const sub = this.#subPath(path, after.text.slice(1), after.pos);
      const leaf = this.#parseComparison(sub);
      filter = { kind: 'and', operands: filter.kind === 'and' ? [...filter.operands, leaf] : [filter, leaf] };
    }
    this.#scope = undefined;
    this.#depth--;
    return { kind: 'valuePath', path, filter };
  }

  #resolve(tok: Token & { type: 'word' }): AttributePath {
    const path =
      this.#scope === undefined
        ? this.#guard(() => parseAttributePath(tok.text, this.#rt, { scimType: ScimType.invalidFilter }), tok.pos)
        : this.#subPath(this.#scope, tok.text, tok.pos);
    // D15: a writeOnly, never-returned attribute (password) can never be a filter target.
    if (leafDef(path).returned === 'never' || path.def.returned === 'never') {
      throw invalid(`${quote(tok.text)} cannot be used in a filter`);
    }
    return path;
  }

  #subPath(parent: AttributePath, name: string, pos: number): AttributePath {
    return this.#guard(() => parseSubAttribute(parent, name, { scimType: ScimType.invalidFilter }), pos);
  }

  #guard<T>(fn: () => T, pos: number): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof AttributePathError) throw invalid(`${err.detail} at position ${pos}`);
      throw err;
    }
  }

  #parseComparison(path: AttributePath): FilterNode {
    const opTok = this.#next('an operator');
    if (opTok.type !== 'word') throw invalid(`expected an operator at position ${opTok.pos}`);
    const op = opTok.text.toLowerCase();
    if (op === 'pr') return { kind: 'present', path };
    if (!COMPARE_OPS.has(op)) throw invalid(`unknown operator ${quote(opTok.text)} at position ${opTok.pos}`);
    const valueTok = this.#next('a value');
    const value = literal(valueTok);
    return compareNode(this.#complexValue(path, opTok.pos), op as CompareOp, value, valueTok.pos);
  }

  /** D16: comparing a complex attribute compares its `value` sub-attribute (`members eq "id"`). */
  #complexValue(path: AttributePath, pos: number): AttributePath {
    if (path.subAttribute !== undefined || path.def.type !== 'complex') return path;
    const valueDef = findSubAttribute(path.def, 'value');
    if (valueDef === undefined) throw invalid(`${path.attribute} is complex; name a sub-attribute to compare (position ${pos})`);
    return { ...path, subAttribute: valueDef.name, subDef: valueDef };
  }

  #atKeyword(word: string): boolean {
    const tok = this.#tokens[this.#i];
    return tok?.type === 'word' && tok.text.toLowerCase() === word;
  }

  #next(expected: string): Token {
    const tok = this.#tokens[this.#i];
    if (tok === undefined) throw invalid(`unexpected end; expected ${expected}`);
    this.#i++;
    return tok;
  }

  #expect(type: ')' | ']'): void {
    const tok = this.#tokens[this.#i];
    if (tok?.type !== type) {
      throw invalid(tok === undefined ? `missing "${type}"` : `unexpected ${describe(tok)} at position ${tok.pos}; expected "${type}"`);
    }
    this.#i++;
  }

  #enter(): void {
    if (++this.#depth > MAX_FILTER_DEPTH) throw invalid(`nested deeper than ${MAX_FILTER_DEPTH} levels`);
  }
}

function describe(tok: Token): string {
  if (tok.type === 'word') return quote(tok.text);
  if (tok.type === 'string') return 'string literal';
  return `"${tok.type}"`;
}

/** compValue = false / null / true / number / string (RFC 7644 §3.4.2.2). */
function literal(tok: Token): FilterValue {
  if (tok.type === 'string') return tok.value;
  if (tok.type !== 'word') throw invalid(`expected a value at position ${tok.pos}, found ${describe(tok)}`);
  const lower = tok.text.toLowerCase();
  if (lower === 'true') return true;
  if (lower === 'false') return false;
  if (lower === 'null') return null;
  if (NUMBER.test(tok.text)) {
    const n = Number(tok.text);
    if (Number.isFinite(n)) return n;
  }
  // D15 leaves unquoted strings open; they are always rejected, never guessed at.
  throw invalid(`value ${quote(tok.text)} at position ${tok.pos} must be a quoted string, a number, true, false or null`);
}

/** Type-checks a comparison against the attribute definition (RFC 7644 §3.4.2.2) and prepares its operand. */
function compareNode(path: AttributePath, op: CompareOp, value: FilterValue, pos: number): CompareNode {
  const def = leafDef(path);
  const name = path.subAttribute === undefined ? path.attribute : `${path.attribute}.${path.subAttribute}`;
  const fail = (why: string): never => {
    throw invalid(`${why} (${name} ${op}, position ${pos})`);
  };
  if (value === null) {
    if (op !== 'eq' && op !== 'ne') fail('null can only be compared with eq or ne');
    return { kind: 'compare', path, op, value, operand: null };
  }
  switch (def.type) {
    case 'boolean':
      if (op !== 'eq' && op !== 'ne') fail('a boolean attribute only supports eq and ne');
      if (typeof value !== 'boolean') fail('expected true or false');
      return { kind: 'compare', path, op, value, operand: value };
    case 'integer':
    case 'decimal':
      if (SUBSTRING_OPS.has(op)) fail('a numeric attribute does not support co, sw or ew');
      if (typeof value !== 'number') fail('expected a number');
      return { kind: 'compare', path, op, value, operand: value };
    case 'dateTime': {
      if (typeof value !== 'string') fail('expected a quoted dateTime');
      if (SUBSTRING_OPS.has(op)) return { kind: 'compare', path, op, value, operand: value };
      const ms = Date.parse(value as string);
      if (Number.isNaN(ms)) fail('expected an RFC 3339 dateTime');
      return { kind: 'compare', path, op, value, operand: ms };
    }
    case 'binary':
    case 'string':
    case 'reference': {
      // Binary values compare as their base64 text, but have no meaningful order.
      if (def.type === 'binary' && ORDERING_OPS.has(op)) fail('a binary attribute cannot be ordered');
      if (typeof value !== 'string') fail('expected a quoted string');
      const s = value as string;
      return { kind: 'compare', path, op, value, operand: def.caseExact ? s : s.toLowerCase() };
    }
    case 'complex':
      return fail('a complex attribute can only be tested with pr');
  }
}
