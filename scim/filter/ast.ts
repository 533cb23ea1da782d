// The filter AST (RFC 7644 §3.4.2.2): a discriminated union the evaluator, the query planner and
// the PATCH engine share. Nodes are immutable once parsed.
import type { AttributePath } from '../attribute-path.js';

export type CompareOp = 'eq' | 'ne' | 'co' | 'sw' | 'ew' | 'gt' | 'ge' | 'lt' | 'le';
export type FilterValue = string | number | boolean | null;

export interface AndNode {
  readonly kind: 'and';
  readonly operands: readonly FilterNode[];
}

export interface OrNode {
  readonly kind: 'or';
  readonly operands: readonly FilterNode[];
}

export interface NotNode {
  readonly kind: 'not';
  readonly operand: FilterNode;
}

/** `attr pr`: present and non-empty. Inside a value path, `path.subAttribute` is read from the element. */
export interface PresentNode {
  readonly kind: 'present';
  readonly path: AttributePath;
}

export interface CompareNode {
  readonly kind: 'compare';
  readonly path: AttributePath;
  readonly op: CompareOp;
  /** The literal as written. */
  readonly value: FilterValue;
  /**
   * The literal prepared for comparison: lower-cased for case-insensitive strings, epoch
   * milliseconds for dateTime ordering/equality, otherwise the literal.
   */
  readonly operand: FilterValue;
}

/**
 * `emails[type eq "work"]`: some element of `path` satisfies `filter`, whose leaves are relative
 * to the element. `emails[type eq "work"].value eq "x"` (docs/scim.md D16) parses to the same node with
 * the trailing comparison added to `filter` as a conjunct.
 */
export interface ValuePathNode {
  readonly kind: 'valuePath';
  readonly path: AttributePath;
  readonly filter: FilterNode;
}

export type FilterNode = AndNode | OrNode | NotNode | PresentNode | CompareNode | ValuePathNode;
