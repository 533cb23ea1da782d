// Evaluation of a parsed filter against a rendered SCIM resource, or against one element of a
// multi-valued attribute (PATCH value paths), with RFC 7644 §3.4.2.2 comparison rules.
import { leafDef } from '../attribute-path.js';
import type { AttributePath } from '../attribute-path.js';
import { isRecord, ownGet } from '../json.js';
import { ENTERPRISE_USER_URN } from '../schema.js';
import type { CompareNode, FilterNode } from './ast.js';

/**
 * Whether `resource` (as `renderUser`/`renderGroup` produce it) matches `node`. A multi-valued
 * attribute matches when any element does. `ne` is the negation of `eq`, so it also matches an
 * absent attribute; every other operator needs a value to be present.
 */
export function matchesFilter(node: FilterNode, resource: Record<string, unknown>): boolean {
  return evaluate(node, resource, undefined);
}

/** Whether one element of a multi-valued attribute matches the inside of a value path. */
export function matchesElement(node: FilterNode, element: Record<string, unknown>): boolean {
  return evaluate(node, undefined, element);
}

function evaluate(node: FilterNode, resource: unknown, element: Record<string, unknown> | undefined): boolean {
  switch (node.kind) {
    case 'and':
      return node.operands.every((n) => evaluate(n, resource, element));
    case 'or':
      return node.operands.some((n) => evaluate(n, resource, element));
    case 'not':
      return !evaluate(node.operand, resource, element);
    case 'valuePath': {
      const top = topValue(resource, node.path);
      const elements = Array.isArray(top) ? top : [top];
      return elements.some((e) => isRecord(e) && evaluate(node.filter, resource, e));
    }
    case 'present':
      return valuesAt(resource, element, node.path).some(isPresent);
    case 'compare':
      return compare(node, valuesAt(resource, element, node.path));
  }
}

function topValue(resource: unknown, path: AttributePath): unknown {
  const container = path.schema === ENTERPRISE_USER_URN ? ownGet(resource, ENTERPRISE_USER_URN) : resource;
  return ownGet(container, path.attribute);
}

/** Every value the path designates: one per element for multi-valued attributes. */
function valuesAt(resource: unknown, element: Record<string, unknown> | undefined, path: AttributePath): unknown[] {
  const sub = path.subAttribute;
  if (element !== undefined) return sub === undefined ? [element] : [ownGet(element, sub)];
  const top = topValue(resource, path);
  if (sub === undefined) return Array.isArray(top) ? top : [top];
  if (Array.isArray(top)) return top.map((e) => ownGet(e, sub));
  return [ownGet(top, sub)];
}

/** RFC 7644 §3.4.2.2 `pr`: has a non-empty value. */
function isPresent(v: unknown): boolean {
  if (v === undefined || v === null || v === '') return false;
  if (Array.isArray(v)) return v.some(isPresent);
  if (isRecord(v)) return Object.values(v).some(isPresent);
  return true;
}

function compare(node: CompareNode, values: unknown[]): boolean {
  if (node.operand === null) {
    const present = values.some(isPresent);
    return node.op === 'eq' ? !present : present;
  }
  if (node.op === 'ne') return !values.some((v) => test(node, 'eq', v));
  return values.some((v) => test(node, node.op, v));
}

function test(node: CompareNode, op: CompareNode['op'], v: unknown): boolean {
  const operand = node.operand;
  const def = leafDef(node.path);
  switch (def.type) {
    case 'boolean':
      return typeof v === 'boolean' && v === operand;
    case 'integer':
    case 'decimal':
      return typeof v === 'number' && order(op, v, operand as number);
    case 'dateTime': {
      if (typeof v !== 'string') return false;
      if (typeof operand === 'string') return substring(op, v, operand);
      // Instants, not strings: "2024-01-01T00:00:00Z" equals "2024-01-01T01:00:00+01:00".
      const ms = Date.parse(v);
      return !Number.isNaN(ms) && order(op, ms, operand as number);
    }
    default: {
      if (typeof v !== 'string') return false;
      const s = def.caseExact ? v : v.toLowerCase();
      const o = operand as string;
      return op === 'co' || op === 'sw' || op === 'ew' ? substring(op, s, o) : order(op, s, o);
    }
  }
}

function order<T extends string | number>(op: CompareNode['op'], a: T, b: T): boolean {
  switch (op) {
    case 'eq':
      return a === b;
    case 'gt':
      return a > b;
    case 'ge':
      return a >= b;
    case 'lt':
      return a < b;
    case 'le':
      return a <= b;
    default:
      return false;
  }
}

function substring(op: CompareNode['op'], a: string, b: string): boolean {
  switch (op) {
    case 'co':
      return a.includes(b);
    case 'sw':
      return a.startsWith(b);
    case 'ew':
      return a.endsWith(b);
    case 'eq':
      return a === b;
    default:
      return false;
  }
}
