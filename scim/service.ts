// SCIM business logic for Users and Groups on a DirectoryStore: create, get, list (filter, page,
// project), replace, patch, delete, with a `directory.change` audit event after each committed write.
import type { AuditMember, DirectoryAuditSink } from './audit-port.js';
import { summarizeChange, type ChangeSummary } from './audit-summary.js';
import { notFound } from './errors.js';
import { matchesFilter } from './filter/evaluate.js';
import { parseFilter } from './filter/parse.js';
import type { FilterNode } from './filter/parse.js';
import { filterNeeds, indexKeyOf } from './filter/plan.js';
import { jsonEqual } from './json.js';
import type { GroupMembership, GroupRecord, MemberRef, ScimAttributes, UserRecord } from './model.js';
import { listResponse, parsePaging } from './http/paging.js';
import { applyPatch } from './patch.js';
import { parseGroupBody, parseProjection, parseUserBody, project, renderGroup, renderUser } from './resource.js';
import type { Projection } from './resource.js';
import type { ResourceType } from './schema.js';
import type { DirectoryStore, GroupKey, UserKey } from './store/port.js';

/** Per-request facts the service needs: where resources live and who is writing. */
export interface ScimRequestContext {
  /** Absolute URL of the SCIM root, e.g. `https://gw:8080/scim/v2` (no trailing slash). */
  baseUrl: string;
  /** Audit identity of the caller, e.g. `scim-token#1`. */
  actor: string;
}

/** RFC 7644 §3.4.2.5 / §3.9 query parameters, as received. */
export interface ProjectionQuery {
  attributes?: string | undefined;
  excludedAttributes?: string | undefined;
}

/** RFC 7644 §3.4.2 list parameters, as received. `sortBy`/`sortOrder` are ignored (D18). */
export interface ListQuery extends ProjectionQuery {
  filter?: string | undefined;
  startIndex?: string | undefined;
  count?: string | undefined;
}

export interface ScimServiceOptions {
  store: DirectoryStore;
  audit: DirectoryAuditSink;
  /** The userName of a user id, so audit events name the members a group change concerns (the index). */
  userName?: (id: string) => string | undefined;
  /** D17: the largest page; advertised as `filter.maxResults`. Default 1000. */
  maxResults?: number;
}

type Resource = Record<string, unknown>;

/** How many records are evaluated per store round trip when a filter is applied in JS. */
const SCAN_BATCH = 200;

async function* inBatches<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let batch: T[] = [];
  for await (const item of items) {
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

function nameOf(attributes: ScimAttributes, key: 'userName' | 'displayName'): string | null {
  const v = attributes[key];
  return typeof v === 'string' ? v : null;
}

function membersOf(rec: GroupRecord): { attributes: ScimAttributes; members: MemberRef[] } {
  return { attributes: rec.attributes, members: rec.members };
}

/** The SCIM service provider's operations; the HTTP layer maps them onto routes. */
export class ScimService {
  readonly maxResults: number;
  readonly #store: DirectoryStore;
  readonly #audit: DirectoryAuditSink;
  readonly #userName: (id: string) => string | undefined;

  constructor(opts: ScimServiceOptions) {
    this.#store = opts.store;
    this.#audit = opts.audit;
    this.#userName = opts.userName ?? (() => undefined);
    this.maxResults = opts.maxResults ?? 1000;
    if (!Number.isInteger(this.maxResults) || this.maxResults < 100) {
      // D17: at least 100, since Okta pages with count=100.
      throw new Error('maxResults must be an integer >= 100');
    }
  }

  /** POST /Users or /Groups: the created resource (projected) and its id. */
  async create(rt: ResourceType, body: unknown, q: ProjectionQuery, ctx: ScimRequestContext): Promise<{ id: string; resource: Resource }> {
    const projection = parseProjection(q, rt);
    if (rt === 'User') {
      const attributes = parseUserBody(body, 'create');
      const rec = await this.#store.createUser(attributes);
      this.#emit('User', rec.id, 'create', ctx, summarizeChange(undefined, { attributes: rec.attributes }), nameOf(rec.attributes, 'userName'));
      return { id: rec.id, resource: project(renderUser(rec, [], ctx.baseUrl), projection, rt) };
    }
    const parsed = parseGroupBody(body);
    const rec = await this.#store.createGroup(parsed.attributes, parsed.members);
    this.#emit('Group', rec.id, 'create', ctx, summarizeChange(undefined, membersOf(rec)), nameOf(rec.attributes, 'displayName'));
    return { id: rec.id, resource: project(renderGroup(rec, ctx.baseUrl), projection, rt) };
  }

  /** GET /Users/{id} or /Groups/{id}; 404 when missing. */
  async get(rt: ResourceType, id: string, q: ProjectionQuery, ctx: ScimRequestContext): Promise<Resource> {
    const projection = parseProjection(q, rt);
    if (rt === 'User') {
      const rec = await this.#store.getUser(id);
      if (rec === undefined) throw notFound(`User ${JSON.stringify(id)} not found`);
      return this.#projectUser(rec, projection, ctx);
    }
    const rec = await this.#store.getGroup(id, { members: this.#wantsMembers(projection, ctx) });
    if (rec === undefined) throw notFound(`Group ${JSON.stringify(id)} not found`);
    return project(renderGroup(rec, ctx.baseUrl), projection, rt);
  }

  /** GET /Users or /Groups: filter (RFC 7644 §3.4.2.2), stable paging (D17), projection. */
  async list(rt: ResourceType, q: ListQuery, ctx: ScimRequestContext): Promise<Resource> {
    const projection = parseProjection(q, rt);
    const paging = parsePaging(q, this.maxResults);
    const filter = q.filter === undefined ? undefined : parseFilter(q.filter, rt);
    return rt === 'User'
      ? this.#listUsers(filter, paging, projection, ctx)
      : this.#listGroups(filter, paging, projection, ctx);
  }

  /** PUT: replaces every writable attribute (RFC 7644 §3.5.1); a body `id` is ignored (D27). */
  async replace(rt: ResourceType, id: string, body: unknown, q: ProjectionQuery, ctx: ScimRequestContext): Promise<Resource> {
    const projection = parseProjection(q, rt);
    let summary: ChangeSummary | undefined;
    if (rt === 'User') {
      const replacement = parseUserBody(body, 'replace');
      const rec = await this.#store.updateUser(id, (current) => {
        // The store may run a mutation again after a conflict; only the last run counts.
        summary = undefined;
        // D32: without `active` the stored value stays, read in the same transaction as the write.
        const attributes =
          replacement.active === undefined ? { ...replacement, active: current.attributes.active === true } : replacement;
        // D11: an identical PUT writes nothing and keeps meta.lastModified.
        if (jsonEqual(current.attributes, attributes)) return undefined;
        summary = summarizeChange({ attributes: current.attributes }, { attributes });
        return attributes;
      });
      if (summary !== undefined) this.#emit('User', id, 'replace', ctx, summary, nameOf(rec.attributes, 'userName'));
      return this.#projectUser(rec, projection, ctx);
    }
    const next = parseGroupBody(body);
    const rec = await this.#store.updateGroup(id, (current) => {
      summary = undefined;
      if (jsonEqual(membersOf(current), next)) return undefined;
      summary = summarizeChange(membersOf(current), next);
      return next;
    });
    if (summary !== undefined) this.#emit('Group', id, 'replace', ctx, summary, nameOf(rec.attributes, 'displayName'));
    return this.#projectGroup(rec, projection, ctx);
  }

  /** PATCH (RFC 7644 §3.5.2): all operations apply or none (the store runs them in one transaction). */
  async patch(rt: ResourceType, id: string, body: unknown, q: ProjectionQuery, ctx: ScimRequestContext): Promise<Resource> {
    const projection = parseProjection(q, rt);
    let summary: ChangeSummary | undefined;
    if (rt === 'User') {
      const rec = await this.#store.updateUser(id, (current) => {
        summary = undefined;
        const { next, changed } = applyPatch('User', current.attributes, body);
        if (!changed) return undefined;
        summary = summarizeChange({ attributes: current.attributes }, { attributes: next });
        return next;
      });
      if (summary !== undefined) this.#emit('User', id, 'patch', ctx, summary, nameOf(rec.attributes, 'userName'));
      return this.#projectUser(rec, projection, ctx);
    }
    const rec = await this.#store.updateGroup(id, (current) => {
      summary = undefined;
      const { next, changed } = applyPatch('Group', { ...current.attributes, members: current.members }, body);
      if (!changed) return undefined;
      const { members, ...attributes } = next;
      const split = { attributes, members: members as MemberRef[] };
      summary = summarizeChange(membersOf(current), split);
      return split;
    });
    if (summary !== undefined) this.#emit('Group', id, 'patch', ctx, summary, nameOf(rec.attributes, 'displayName'));
    return this.#projectGroup(rec, projection, ctx);
  }

  /** DELETE: memberships go with the resource (D26); 404 when missing. */
  async delete(rt: ResourceType, id: string, ctx: ScimRequestContext): Promise<void> {
    // The name as it was, for the audit event: after the delete nobody can look it up.
    const before = rt === 'User' ? await this.#store.getUser(id) : await this.#store.getGroup(id, { members: false });
    const deleted = rt === 'User' ? await this.#store.deleteUser(id) : await this.#store.deleteGroup(id);
    if (!deleted) throw notFound(`${rt} ${JSON.stringify(id)} not found`);
    const name = before === undefined ? null : nameOf(before.attributes, rt === 'User' ? 'userName' : 'displayName');
    this.#emit(rt, id, 'delete', ctx, { changed: [], summary: 'deleted' }, name);
  }

  #emit(resource: ResourceType, id: string, op: 'create' | 'replace' | 'patch' | 'delete', ctx: ScimRequestContext, change: ChangeSummary, name: string | null): void {
    const named = (ids: string[]): AuditMember[] =>
      ids.map((m) => {
        const userName = this.#userName(m);
        return userName === undefined ? { id: m } : { id: m, userName };
      });
    this.#audit({
      resource,
      id,
      op,
      actor: ctx.actor,
      name,
      changed: change.changed,
      ...(change.active !== undefined ? { active: change.active } : {}),
      ...(change.members !== undefined ? { members: { added: named(change.members.added), removed: named(change.members.removed) } } : {}),
      summary: change.summary,
    });
  }

  async #projectUser(rec: UserRecord, projection: Projection, ctx: ScimRequestContext): Promise<Resource> {
    const groups = await this.#store.groupsOfUsers([rec.id]);
    return project(renderUser(rec, groups.get(rec.id) ?? [], ctx.baseUrl), projection, 'User');
  }

  async #projectGroup(rec: GroupRecord, projection: Projection, ctx: ScimRequestContext): Promise<Resource> {
    return project(renderGroup(rec, ctx.baseUrl), projection, 'Group');
  }

  /** Whether the projection keeps `members`, so the store can skip loading them (D23). */
  #wantsMembers(projection: Projection, ctx: ScimRequestContext): boolean {
    const probe: GroupRecord = { id: 'probe', created: '', lastModified: '', attributes: { displayName: 'probe' }, members: [{ value: 'probe' }] };
    return Object.hasOwn(project(renderGroup(probe, ctx.baseUrl), projection, 'Group'), 'members');
  }

  async #listUsers(filter: FilterNode | undefined, paging: { startIndex: number; count: number }, projection: Projection, ctx: ScimRequestContext): Promise<Resource> {
    let total: number;
    let page: UserRecord[];
    if (filter === undefined) {
      const res = await this.#store.listUsers({ offset: paging.startIndex - 1, limit: paging.count });
      total = res.total;
      page = res.items;
    } else {
      const key = indexKeyOf(filter, 'User') as UserKey | undefined;
      const needsGroups = filterNeeds(filter, 'User').groups;
      total = 0;
      page = [];
      for await (const batch of inBatches(this.#store.scanUsers(key), SCAN_BATCH)) {
        const groups = needsGroups ? await this.#store.groupsOfUsers(batch.map((u) => u.id)) : undefined;
        for (const user of batch) {
          if (!matchesFilter(filter, renderUser(user, groups?.get(user.id) ?? [], ctx.baseUrl))) continue;
          total++;
          if (total >= paging.startIndex && page.length < paging.count) page.push(user);
        }
      }
    }
    const groups: Map<string, GroupMembership[]> = page.length > 0 ? await this.#store.groupsOfUsers(page.map((u) => u.id)) : new Map();
    const resources = page.map((u) => project(renderUser(u, groups.get(u.id) ?? [], ctx.baseUrl), projection, 'User'));
    return listResponse(total, paging.startIndex, resources);
  }

  async #listGroups(filter: FilterNode | undefined, paging: { startIndex: number; count: number }, projection: Projection, ctx: ScimRequestContext): Promise<Resource> {
    const wantsMembers = this.#wantsMembers(projection, ctx);
    let total: number;
    let page: GroupRecord[];
    if (filter === undefined) {
      const res = await this.#store.listGroups({ offset: paging.startIndex - 1, limit: paging.count, members: wantsMembers });
      total = res.total;
      page = res.items;
    } else {
      const key = indexKeyOf(filter, 'Group') as GroupKey | undefined;
      const needsMembers = filterNeeds(filter, 'Group').members;
      total = 0;
      page = [];
      for await (const group of this.#store.scanGroups({ key, members: needsMembers })) {
        if (!matchesFilter(filter, renderGroup(group, ctx.baseUrl))) continue;
        total++;
        if (total >= paging.startIndex && page.length < paging.count) page.push(group);
      }
      if (wantsMembers && !needsMembers) {
        // Members are loaded only for the page, not for every group the filter looked at.
        const loaded: GroupRecord[] = [];
        for (const g of page) loaded.push((await this.#store.getGroup(g.id, { members: true })) ?? g);
        page = loaded;
      }
    }
    const resources = page.map((g) => project(renderGroup(g, ctx.baseUrl), projection, 'Group'));
    return listResponse(total, paging.startIndex, resources);
  }
}

