// The working copy of one multi-valued attribute during a PATCH: de-duplicating appends (D11),
// listed removals (D8), filtered updates; Group members are keyed by value so large membership
// changes stay linear.
import { matchesElement } from '../filter/evaluate.js';
import type { FilterNode } from '../filter/ast.js';
import { isRecord } from '../json.js';
import type { JsonObject } from '../json.js';
import { findSubAttribute } from '../schema.js';
import type { AttributeDef } from '../schema.js';
import { MAX_ELEMENTS, enforceSinglePrimary } from '../resource/values.js';
import { badRequest, ScimType } from '../errors.js';

export interface Collection {
  /** Adds elements not already present (D11); returns how many were added. */
  append(elements: readonly JsonObject[]): number;
  setAll(elements: readonly JsonObject[]): void;
  clear(): void;
  /** D8: removes the elements matching each listed item on `value` (or on every given sub-attribute when it has none). */
  removeListed(items: readonly JsonObject[]): void;
  /** Replaces each element matching `filter` (every element when undefined) with `fn(e)`; `undefined` removes it. Returns the match count. */
  update(filter: FilterNode | undefined, fn: (e: JsonObject) => JsonObject | undefined): number;
  result(): JsonObject[];
}

/** Equality of two sub-attribute values under the sub-attribute's caseExact rule. */
function sameValue(def: AttributeDef, name: string, a: unknown, b: unknown): boolean {
  if (a === b) return true;
  const sub = findSubAttribute(def, name);
  return typeof a === 'string' && typeof b === 'string' && sub !== undefined && !sub.caseExact && a.toLowerCase() === b.toLowerCase();
}

/** Whether `existing` has every sub-attribute `given` has, with equal values. */
function covers(def: AttributeDef, existing: JsonObject, given: JsonObject): boolean {
  for (const [k, v] of Object.entries(given)) if (!sameValue(def, k, existing[k], v)) return false;
  return true;
}

/** A multi-valued complex attribute of a User (emails, phoneNumbers, ...): small, kept as an array. */
export class ArrayCollection implements Collection {
  readonly #def: AttributeDef;
  #items: JsonObject[];

  constructor(def: AttributeDef, initial: unknown) {
    this.#def = def;
    this.#items = Array.isArray(initial) ? initial.filter(isRecord) : [];
  }

  append(elements: readonly JsonObject[]): number {
    let added = 0;
    let preferred: JsonObject | undefined;
    for (const el of elements) {
      if (this.#items.some((x) => covers(this.#def, x, el))) continue;
      if (this.#items.length >= MAX_ELEMENTS) {
        throw badRequest(ScimType.invalidValue, `Invalid value for ${this.#def.name}: expected at most ${MAX_ELEMENTS} elements`);
      }
      this.#items.push(el);
      added++;
      if (el.primary === true) preferred = el;
    }
    this.#items = enforceSinglePrimary(this.#items, preferred);
    return added;
  }

  setAll(elements: readonly JsonObject[]): void {
    this.#items = enforceSinglePrimary(elements);
  }

  clear(): void {
    this.#items = [];
  }

  removeListed(items: readonly JsonObject[]): void {
    this.#items = this.#items.filter(
      (x) => !items.some((item) => (item.value !== undefined ? sameValue(this.#def, 'value', x.value, item.value) : covers(this.#def, x, item))),
    );
  }

  update(filter: FilterNode | undefined, fn: (e: JsonObject) => JsonObject | undefined): number {
    let count = 0;
    let preferred: JsonObject | undefined;
    const next: JsonObject[] = [];
    for (const el of this.#items) {
      if (filter !== undefined && !matchesElement(filter, el)) {
        next.push(el);
        continue;
      }
      count++;
      const replaced = fn(el);
      if (replaced === undefined) continue;
      next.push(replaced);
      if (replaced.primary === true) preferred = replaced;
    }
    this.#items = enforceSinglePrimary(next, preferred);
    return count;
  }

  result(): JsonObject[] {
    return this.#items;
  }
}

/**
 * Group members keyed by `value` in insertion order: appends, listed removals and
 * `members[value eq "id"]` are O(1) per member, so 10,000 additions to 10,000 members stay fast.
 */
export class MemberCollection implements Collection {
  #map = new Map<string, JsonObject>();

  constructor(initial: unknown) {
    if (Array.isArray(initial)) this.append(initial.filter(isRecord));
  }

  append(elements: readonly JsonObject[]): number {
    let added = 0;
    for (const el of elements) {
      const value = el.value;
      if (typeof value !== 'string' || this.#map.has(value)) continue;
      this.#map.set(value, el);
      added++;
    }
    return added;
  }

  setAll(elements: readonly JsonObject[]): void {
    this.#map = new Map();
    this.append(elements);
  }

  clear(): void {
    this.#map = new Map();
  }

  removeListed(items: readonly JsonObject[]): void {
    for (const item of items) if (typeof item.value === 'string') this.#map.delete(item.value);
  }

  update(filter: FilterNode | undefined, fn: (e: JsonObject) => JsonObject | undefined): number {
    const key = filter === undefined ? undefined : exactValueKey(filter);
    if (key !== undefined) {
      const el = this.#map.get(key);
      if (el === undefined || !matchesElement(filter as FilterNode, el)) return 0;
      const replaced = fn(el);
      if (replaced === undefined) this.#map.delete(key);
      else if (replaced.value === key) this.#map.set(key, replaced);
      else this.#rebuild(new Map([[key, replaced]]));
      return 1;
    }
    let count = 0;
    const changes = new Map<string, JsonObject | undefined>();
    for (const [k, el] of this.#map) {
      if (filter !== undefined && !matchesElement(filter, el)) continue;
      count++;
      changes.set(k, fn(el));
    }
    if (count > 0) this.#rebuild(changes);
    return count;
  }

  /** Applies replacements in place, keeping order; a replacement whose value already exists is dropped (D11). */
  #rebuild(changes: ReadonlyMap<string, JsonObject | undefined>): void {
    const next = new Map<string, JsonObject>();
    for (const [k, el] of this.#map) {
      const replaced = changes.has(k) ? changes.get(k) : el;
      const value = replaced?.value;
      if (replaced !== undefined && typeof value === 'string' && !next.has(value)) next.set(value, replaced);
    }
    this.#map = next;
  }

  result(): JsonObject[] {
    return [...this.#map.values()];
  }
}

/** `value eq "x"` on members (case-exact): answerable by key. */
function exactValueKey(filter: FilterNode): string | undefined {
  if (filter.kind !== 'compare' || filter.op !== 'eq' || typeof filter.value !== 'string') return undefined;
  if (filter.path.subAttribute !== 'value' || filter.path.subDef?.caseExact !== true) return undefined;
  return filter.value;
}
