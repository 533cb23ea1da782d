// The discovery resources of RFC 7644 §4 / RFC 7643 §5-§7: ServiceProviderConfig, ResourceTypes,
// Schemas. They advertise only what the service actually does (D17, D18, D19, D21).
import { MAX_BODY_BYTES } from './body.js';
import { notFound } from '../errors.js';
import { listResponse } from './paging.js';
import { ENTERPRISE_USER_URN, GROUP_SCHEMA_URN, USER_SCHEMA_URN, schemasOf } from '../schema.js';
import type { ResourceType, SchemaDef } from '../schema.js';

const SPC_URN = 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig';
const RESOURCE_TYPE_URN = 'urn:ietf:params:scim:schemas:core:2.0:ResourceType';
const SCHEMA_URN = 'urn:ietf:params:scim:schemas:core:2.0:Schema';

const RESOURCE_TYPES = [
  { id: 'User', endpoint: '/Users', description: 'User Account', schema: USER_SCHEMA_URN, extensions: [ENTERPRISE_USER_URN] },
  { id: 'Group', endpoint: '/Groups', description: 'Group', schema: GROUP_SCHEMA_URN, extensions: [] },
] as const satisfies readonly { id: ResourceType; endpoint: string; description: string; schema: string; extensions: readonly string[] }[];

/** RFC 7643 §5. `maxResults` is the page size the list endpoints clamp `count` to (D17). */
export function serviceProviderConfig(baseUrl: string, maxResults: number): Record<string, unknown> {
  return {
    schemas: [SPC_URN],
    patch: { supported: true },
    // D4/D21: bulk is not implemented; maxPayloadSize still tells clients the request body limit.
    bulk: { supported: false, maxOperations: 0, maxPayloadSize: MAX_BODY_BYTES },
    filter: { supported: true, maxResults },
    changePassword: { supported: false },
    sort: { supported: false },
    etag: { supported: false },
    authenticationSchemes: [
      {
        type: 'oauthbearertoken',
        name: 'OAuth Bearer Token',
        description: 'Authentication with a bearer token configured in scim.tokens',
        specUri: 'https://www.rfc-editor.org/info/rfc6750',
        primary: true,
      },
    ],
    meta: { resourceType: 'ServiceProviderConfig', location: `${baseUrl}/ServiceProviderConfig` },
  };
}

function resourceTypeResource(rt: (typeof RESOURCE_TYPES)[number], baseUrl: string): Record<string, unknown> {
  return {
    schemas: [RESOURCE_TYPE_URN],
    id: rt.id,
    name: rt.id,
    endpoint: rt.endpoint,
    description: rt.description,
    schema: rt.schema,
    schemaExtensions: rt.extensions.map((schema) => ({ schema, required: false })),
    meta: { resourceType: 'ResourceType', location: `${baseUrl}/ResourceTypes/${rt.id}` },
  };
}

function schemaResource(def: SchemaDef, baseUrl: string): Record<string, unknown> {
  return {
    schemas: [SCHEMA_URN],
    id: def.id,
    name: def.name,
    description: def.description,
    attributes: def.attributes,
    meta: { resourceType: 'Schema', location: `${baseUrl}/Schemas/${def.id}` },
  };
}

function allSchemas(): SchemaDef[] {
  const user = schemasOf('User');
  const group = schemasOf('Group');
  const out: SchemaDef[] = [];
  const seen = new Set<string>();
  for (const def of [user.core, ...user.extensions, group.core, ...group.extensions]) {
    if (!seen.has(def.id)) {
      seen.add(def.id);
      out.push(def);
    }
  }
  return out;
}

/** Discovery lists are never paged. */
function listOf(items: Record<string, unknown>[]): Record<string, unknown> {
  return listResponse(items.length, 1, items);
}

/** `GET /ResourceTypes` (RFC 7644 §4). */
export function resourceTypesList(baseUrl: string): Record<string, unknown> {
  return listOf(RESOURCE_TYPES.map((rt) => resourceTypeResource(rt, baseUrl)));
}

/** `GET /ResourceTypes/{name}`; 404 for an unknown name. */
export function resourceTypeById(name: string, baseUrl: string): Record<string, unknown> {
  const rt = RESOURCE_TYPES.find((r) => r.id === name);
  if (rt === undefined) throw notFound(`Resource type ${JSON.stringify(name)} not found`);
  return resourceTypeResource(rt, baseUrl);
}

/** `GET /Schemas` (RFC 7644 §4) with full attribute definitions (RFC 7643 §7). */
export function schemasList(baseUrl: string): Record<string, unknown> {
  return listOf(allSchemas().map((d) => schemaResource(d, baseUrl)));
}

/** `GET /Schemas/{urn}`; schema URNs compare case-insensitively (RFC 7643 §2.1 attribute names). */
export function schemaById(urn: string, baseUrl: string): Record<string, unknown> {
  const def = allSchemas().find((d) => d.id.toLowerCase() === urn.toLowerCase());
  if (def === undefined) throw notFound(`Schema ${JSON.stringify(urn)} not found`);
  return schemaResource(def, baseUrl);
}
