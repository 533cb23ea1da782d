// Query planning for filters: the index lookup a store can use to narrow candidates, and which
// related data (group members, user groups) evaluation needs loaded.
import type { AttributePath } from '../attribute-path.js';
import { ENTERPRISE_USER_URN } from '../schema.js';
import type { ResourceType } from '../schema.js';
import type { GroupKey, UserKey } from '../store/port.js';
import type { FilterNode } from './ast.js';

type KeyAttr = UserKey['attr'] | GroupKey['attr'];

// Preferred first: the most selective index wins when several conjuncts qualify.
const USER_KEYS: readonly UserKey['attr'][] = ['id', 'userName', 'externalId', 'emails.value'];
const GROUP_KEYS: readonly GroupKey['attr'][] = ['id', 'displayName', 'externalId', 'members.value'];

/**
 * An equality the store can answer from an index, taken from the whole filter or from one
 * conjunct of a top-level `and`. Every resource matching `node` also matches the key (the key's
 * case rule is the attribute's caseExact, as in evaluation), so narrowing never loses a match.
 */
export function indexKeyOf(node: FilterNode, rt: ResourceType): UserKey | GroupKey | undefined {
  const allowed: readonly KeyAttr[] = rt === 'User' ? USER_KEYS : GROUP_KEYS;
  let best: { attr: KeyAttr; value: string } | undefined;
  for (const conjunct of conjuncts(node)) {
    const key = keyOf(conjunct, allowed);
    if (key !== undefined && (best === undefined || allowed.indexOf(key.attr) < allowed.indexOf(best.attr))) best = key;
  }
  return best as UserKey | GroupKey | undefined;
}

function conjuncts(node: FilterNode): FilterNode[] {
  return node.kind === 'and' ? node.operands.flatMap(conjuncts) : [node];
}

function keyOf(node: FilterNode, allowed: readonly KeyAttr[]): { attr: KeyAttr; value: string } | undefined {
  if (node.kind === 'compare') return eqKey(node.path, node.op, node.value, allowed);
  if (node.kind === 'valuePath') {
    // `emails[type eq "work" and value eq "x"]` needs an element whose value is "x": emails.value = "x".
    for (const inner of conjuncts(node.filter)) {
      if (inner.kind === 'compare') {
        const key = eqKey(inner.path, inner.op, inner.value, allowed);
        if (key !== undefined) return key;
      }
    }
  }
  return undefined;
}

function eqKey(path: AttributePath, op: string, value: unknown, allowed: readonly KeyAttr[]): { attr: KeyAttr; value: string } | undefined {
  if (op !== 'eq' || typeof value !== 'string' || path.schema === ENTERPRISE_USER_URN) return undefined;
  const attr = (path.subAttribute === undefined ? path.attribute : `${path.attribute}.${path.subAttribute}`) as KeyAttr;
  return allowed.includes(attr) ? { attr, value } : undefined;
}

/** Whether evaluating `node` reads a group's `members` or a user's `groups`. */
export function filterNeeds(node: FilterNode, rt: ResourceType): { members: boolean; groups: boolean } {
  const attrs = new Set<string>();
  collect(node, attrs);
  return { members: rt === 'Group' && attrs.has('members'), groups: rt === 'User' && attrs.has('groups') };
}

function collect(node: FilterNode, out: Set<string>): void {
  switch (node.kind) {
    case 'and':
    case 'or':
      for (const n of node.operands) collect(n, out);
      return;
    case 'not':
      collect(node.operand, out);
      return;
    case 'valuePath':
      out.add(node.path.attribute);
      collect(node.filter, out);
      return;
    default:
      out.add(node.path.attribute);
  }
}
