// The SCIM schemas rolegate serves (RFC 7643 §8.7.1 User, Group, Enterprise User; §3.1 common
// attributes) and case-insensitive, prototype-safe lookups into them.

export const USER_SCHEMA_URN = 'urn:ietf:params:scim:schemas:core:2.0:User';
export const GROUP_SCHEMA_URN = 'urn:ietf:params:scim:schemas:core:2.0:Group';
export const ENTERPRISE_USER_URN = 'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User';

export type ResourceType = 'User' | 'Group';

export type AttributeType = 'string' | 'boolean' | 'decimal' | 'integer' | 'dateTime' | 'reference' | 'complex' | 'binary';
export type Mutability = 'readOnly' | 'readWrite' | 'immutable' | 'writeOnly';
export type Returned = 'always' | 'never' | 'default' | 'request';
export type Uniqueness = 'none' | 'server' | 'global';

/** One attribute definition as RFC 7643 §7 publishes it under `/Schemas`. */
export interface AttributeDef {
  readonly name: string;
  readonly type: AttributeType;
  readonly multiValued: boolean;
  readonly description: string;
  readonly required: boolean;
  readonly caseExact: boolean;
  readonly mutability: Mutability;
  readonly returned: Returned;
  readonly uniqueness: Uniqueness;
  readonly subAttributes?: readonly AttributeDef[];
  readonly canonicalValues?: readonly string[];
  readonly referenceTypes?: readonly string[];
}

export interface SchemaDef {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  readonly attributes: readonly AttributeDef[];
}

type Options = Partial<Omit<AttributeDef, 'name' | 'type' | 'description'>>;

function attr(name: string, type: AttributeType, description: string, opts: Options = {}): AttributeDef {
  return {
    name,
    type,
    multiValued: opts.multiValued ?? false,
    description,
    required: opts.required ?? false,
    caseExact: opts.caseExact ?? false,
    mutability: opts.mutability ?? 'readWrite',
    returned: opts.returned ?? 'default',
    uniqueness: opts.uniqueness ?? 'none',
    ...(opts.subAttributes === undefined ? {} : { subAttributes: opts.subAttributes }),
    ...(opts.canonicalValues === undefined ? {} : { canonicalValues: opts.canonicalValues }),
    ...(opts.referenceTypes === undefined ? {} : { referenceTypes: opts.referenceTypes }),
  };
}

const str = (name: string, description: string, opts?: Options): AttributeDef => attr(name, 'string', description, opts);

/** The value/display/type/primary quartet RFC 7643 §4.1.2 uses for most multi-valued User attributes. */
function multi(name: string, description: string, types: readonly string[], valueDef?: AttributeDef): AttributeDef {
  const typeOpts: Options = types.length > 0 ? { canonicalValues: types } : {};
  return attr(name, 'complex', description, {
    multiValued: true,
    subAttributes: [
      valueDef ?? str('value', `The value of the ${name} entry.`),
      str('display', 'A human-readable name, primarily used for display purposes.'),
      str('type', `A label indicating the ${name} entry's function.`, typeOpts),
      attr('primary', 'boolean', `Whether this is the primary ${name} entry; 'true' appears no more than once.`),
    ],
  });
}

/** RFC 7643 §3.1: attributes of every resource, rendered at the top level beside the core attributes. */
export const COMMON_ATTRIBUTES: readonly AttributeDef[] = [
  str('id', 'Unique identifier for the SCIM resource as defined by the service provider.', {
    caseExact: true,
    mutability: 'readOnly',
    returned: 'always',
    uniqueness: 'server',
  }),
  str('externalId', 'Identifier for the resource as defined by the provisioning client.', { caseExact: true }),
  attr('meta', 'complex', 'Resource metadata maintained by the service provider.', {
    mutability: 'readOnly',
    subAttributes: [
      str('resourceType', 'The name of the resource type of the resource.', { caseExact: true, mutability: 'readOnly' }),
      attr('created', 'dateTime', 'When the resource was added to the service provider.', { mutability: 'readOnly' }),
      attr('lastModified', 'dateTime', 'When the resource was last updated.', { mutability: 'readOnly' }),
      attr('location', 'reference', 'The URI of the resource being returned.', {
        caseExact: true,
        mutability: 'readOnly',
        referenceTypes: ['uri'],
      }),
      str('version', 'The version (ETag) of the resource being returned.', { caseExact: true, mutability: 'readOnly' }),
    ],
  }),
];

export const USER_SCHEMA: SchemaDef = {
  id: USER_SCHEMA_URN,
  name: 'User',
  description: 'User Account',
  attributes: [
    // Case-insensitive: userName uniqueness and lookups ignore case (docs/scim.md D14).
    str('userName', 'Unique identifier for the User, typically used by the user to directly authenticate.', {
      required: true,
      uniqueness: 'server',
    }),
    attr('name', 'complex', "The components of the user's real name.", {
      subAttributes: [
        str('formatted', 'The full name, including all middle names, titles, and suffixes as appropriate.'),
        str('familyName', 'The family name of the User.'),
        str('givenName', 'The given name of the User.'),
        str('middleName', 'The middle name(s) of the User.'),
        str('honorificPrefix', 'The honorific prefix(es) of the User.'),
        str('honorificSuffix', 'The honorific suffix(es) of the User.'),
      ],
    }),
    str('displayName', 'The name of the User, suitable for display to end-users.'),
    str('nickName', 'The casual way to address the user in real life.'),
    attr('profileUrl', 'reference', "A fully qualified URL pointing to a page representing the User's online profile.", {
      referenceTypes: ['external'],
    }),
    str('title', "The user's title, such as 'Vice President'."),
    str('userType', 'Used to identify the relationship between the organization and the user.'),
    str('preferredLanguage', "Indicates the User's preferred written or spoken language."),
    str('locale', "Used to indicate the User's default location for localization purposes."),
    str('timezone', "The User's time zone in the 'Olson' time zone database format."),
    attr('active', 'boolean', "A Boolean value indicating the User's administrative status."),
    // Accepted and discarded: rolegate never stores a password (RFC 7643 §4.1.1: returned never).
    str('password', "The User's cleartext password; never stored or returned by rolegate.", {
      mutability: 'writeOnly',
      returned: 'never',
    }),
    multi('emails', 'Email addresses for the user.', ['work', 'home', 'other']),
    multi('phoneNumbers', 'Phone numbers for the User.', ['work', 'home', 'mobile', 'fax', 'pager', 'other']),
    multi('ims', 'Instant messaging addresses for the User.', ['aim', 'gtalk', 'icq', 'xmpp', 'msn', 'skype', 'qq', 'yahoo']),
    multi(
      'photos',
      'URLs of photos of the User.',
      ['photo', 'thumbnail'],
      attr('value', 'reference', 'URL of a photo of the User.', { referenceTypes: ['external'] }),
    ),
    attr('addresses', 'complex', 'A physical mailing address for this User.', {
      multiValued: true,
      subAttributes: [
        str('formatted', 'The full mailing address, formatted for display or use with a mailing label.'),
        str('streetAddress', 'The full street address component.'),
        str('locality', 'The city or locality component.'),
        str('region', 'The state or region component.'),
        str('postalCode', 'The zip code or postal code component.'),
        str('country', 'The country name component.'),
        str('type', "A label indicating the address's function.", { canonicalValues: ['work', 'home', 'other'] }),
        attr('primary', 'boolean', "Whether this is the primary address; 'true' appears no more than once."),
      ],
    }),
    // readOnly: memberships are written through Group.members only (RFC 7643 §4.1.2).
    attr('groups', 'complex', 'A list of groups to which the user belongs, direct membership only.', {
      multiValued: true,
      mutability: 'readOnly',
      subAttributes: [
        // caseExact like `id`, which it references.
        str('value', "The identifier of the User's group.", { caseExact: true, mutability: 'readOnly' }),
        attr('$ref', 'reference', "The URI of the corresponding 'Group' resource.", {
          caseExact: true,
          mutability: 'readOnly',
          referenceTypes: ['User', 'Group'],
        }),
        str('display', 'A human-readable name, primarily used for display purposes.', { mutability: 'readOnly' }),
        str('type', "A label indicating the attribute's function, e.g., 'direct' or 'indirect'.", {
          mutability: 'readOnly',
          canonicalValues: ['direct', 'indirect'],
        }),
      ],
    }),
    multi('entitlements', 'A list of entitlements for the User.', []),
    multi('roles', 'A list of roles for the User.', []),
    multi(
      'x509Certificates',
      'A list of certificates issued to the User.',
      [],
      // Base64 text is case-sensitive.
      attr('value', 'binary', 'The value of an X.509 certificate.', { caseExact: true }),
    ),
  ],
};

export const GROUP_SCHEMA: SchemaDef = {
  id: GROUP_SCHEMA_URN,
  name: 'Group',
  description: 'Group',
  attributes: [
    // Required and unique case-insensitively (docs/scim.md D13): it names the group in role mappings.
    str('displayName', 'A human-readable name for the Group.', { required: true, uniqueness: 'server' }),
    attr('members', 'complex', 'A list of members of the Group.', {
      multiValued: true,
      subAttributes: [
        // caseExact: a member value is a User `id`, which is case-exact; the store's index agrees.
        str('value', 'Identifier of the member of this Group.', { caseExact: true, mutability: 'immutable' }),
        attr('$ref', 'reference', 'The URI corresponding to a SCIM resource that is a member of this Group.', {
          caseExact: true,
          mutability: 'immutable',
          referenceTypes: ['User'],
        }),
        // Only Users: nested groups are rejected (docs/scim.md D12).
        str('type', 'A label indicating the type of resource, e.g., "User".', {
          mutability: 'immutable',
          canonicalValues: ['User'],
        }),
        str('display', 'A human-readable name for the member, kept as the client sent it.'),
      ],
    }),
  ],
};

export const ENTERPRISE_USER_SCHEMA: SchemaDef = {
  id: ENTERPRISE_USER_URN,
  name: 'EnterpriseUser',
  description: 'Enterprise User',
  attributes: [
    str('employeeNumber', 'Numeric or alphanumeric identifier assigned to a person.'),
    str('costCenter', 'Identifies the name of a cost center.'),
    str('organization', 'Identifies the name of an organization.'),
    str('division', 'Identifies the name of a division.'),
    str('department', 'Identifies the name of a department.'),
    attr('manager', 'complex', "The User's manager.", {
      subAttributes: [
        str('value', 'The id of the SCIM resource representing the User\'s manager.', { caseExact: true }),
        attr('$ref', 'reference', "The URI of the SCIM resource representing the User's manager.", {
          caseExact: true,
          referenceTypes: ['User'],
        }),
        str('displayName', "The displayName of the User's manager.", { mutability: 'readOnly' }),
      ],
    }),
  ],
};

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

deepFreeze(COMMON_ATTRIBUTES);
deepFreeze(USER_SCHEMA);
deepFreeze(GROUP_SCHEMA);
deepFreeze(ENTERPRISE_USER_SCHEMA);

const SCHEMAS: Readonly<Record<ResourceType, { core: SchemaDef; extensions: SchemaDef[] }>> = {
  User: { core: USER_SCHEMA, extensions: [ENTERPRISE_USER_SCHEMA] },
  Group: { core: GROUP_SCHEMA, extensions: [] },
};

/** The core schema and the extension schemas of a resource type (RFC 7643 §6). */
export function schemasOf(rt: ResourceType): { core: SchemaDef; extensions: SchemaDef[] } {
  const s = SCHEMAS[rt];
  return { core: s.core, extensions: [...s.extensions] };
}

// Lookups go through Maps keyed by lower-cased names: attribute names are case-insensitive
// (RFC 7643 §2.1), and a Map never resolves `__proto__` or `constructor` to something inherited.
const byName = new WeakMap<readonly AttributeDef[], ReadonlyMap<string, AttributeDef>>();

function indexOf(defs: readonly AttributeDef[]): ReadonlyMap<string, AttributeDef> {
  let map = byName.get(defs);
  if (map === undefined) {
    map = new Map(defs.map((d) => [d.name.toLowerCase(), d]));
    byName.set(defs, map);
  }
  return map;
}

/** Finds an attribute by case-insensitive name; `undefined` when unknown. */
export function findAttribute(defs: readonly AttributeDef[], name: string): AttributeDef | undefined {
  return indexOf(defs).get(name.toLowerCase());
}

/** Finds a sub-attribute of a complex attribute by case-insensitive name. */
export function findSubAttribute(def: AttributeDef, name: string): AttributeDef | undefined {
  return def.subAttributes === undefined ? undefined : findAttribute(def.subAttributes, name);
}
