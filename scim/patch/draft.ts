// The copy-on-write working state of a PATCH: reads and writes attributes by canonical path,
// never mutates the caller's `current`, and materializes the result once all operations succeed.
import type { AttributePath } from '../attribute-path.js';
import { isRecord, ownGet } from '../json.js';
import type { JsonObject } from '../json.js';
import type { ScimAttributes } from '../model.js';
import { schemasOf } from '../schema.js';
import type { ResourceType } from '../schema.js';
import { ArrayCollection, MemberCollection } from './collection.js';
import type { Collection } from './collection.js';

export class Draft {
  readonly #rt: ResourceType;
  readonly #core: string;
  // Values reachable from #root are shared with `current` until replaced; they are never mutated.
  readonly #root: JsonObject;
  readonly #collections = new Map<string, { path: AttributePath; collection: Collection }>();

  constructor(rt: ResourceType, current: ScimAttributes) {
    this.#rt = rt;
    this.#core = schemasOf(rt).core.id;
    this.#root = { ...current };
  }

  get rt(): ResourceType {
    return this.#rt;
  }

  /** The current value of a single-valued attribute. */
  get(path: AttributePath): unknown {
    return ownGet(this.#container(path.schema), path.attribute);
  }

  /** Sets (or, with `undefined`, unassigns) an attribute; an emptied extension object disappears. */
  set(path: AttributePath, value: unknown): void {
    if (path.schema === this.#core) {
      if (value === undefined) delete this.#root[path.attribute];
      else this.#root[path.attribute] = value;
      return;
    }
    const ext: JsonObject = { ...this.#container(path.schema) };
    if (value === undefined) delete ext[path.attribute];
    else ext[path.attribute] = value;
    if (Object.keys(ext).length > 0) this.#root[path.schema] = ext;
    else delete this.#root[path.schema];
  }

  /** Unassigns a whole extension schema's attributes. */
  removeExtension(urn: string): void {
    delete this.#root[urn];
    for (const [key, entry] of this.#collections) if (entry.path.schema === urn) this.#collections.delete(key);
  }

  /** The working copy of a multi-valued attribute, created on first use. */
  collection(path: AttributePath): Collection {
    const key = `${path.schema}:${path.attribute}`;
    let entry = this.#collections.get(key);
    if (entry === undefined) {
      const initial = this.get(path);
      const collection = this.#rt === 'Group' && path.attribute === 'members' ? new MemberCollection(initial) : new ArrayCollection(path.def, initial);
      entry = { path, collection };
      this.#collections.set(key, entry);
    }
    return entry.collection;
  }

  /** The next state. Group `members` is always an array; other emptied multi-valued attributes are unassigned. */
  result(): ScimAttributes {
    for (const { path, collection } of this.#collections.values()) {
      const items = collection.result();
      const isMembers = this.#rt === 'Group' && path.attribute === 'members';
      this.set(path, items.length > 0 || isMembers ? items : undefined);
    }
    this.#collections.clear();
    return this.#root;
  }

  #container(schema: string): JsonObject {
    if (schema === this.#core) return this.#root;
    const ext = ownGet(this.#root, schema);
    return isRecord(ext) ? ext : {};
  }
}
