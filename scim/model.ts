// The directory's resource model as the store keeps it and the SCIM layer reads and writes it.

/**
 * SCIM attributes in canonical form: canonical attribute names (as spelled in the schema, e.g.
 * `userName`, `name.givenName`), Enterprise User attributes nested under their schema URN key,
 * booleans as booleans, no JSON null and no empty strings (unassigned attributes are absent, D28).
 * Never contains `id`, `meta`, `schemas`, `groups`, `members` or `password`: those are managed
 * by the store or never kept.
 */
export type ScimAttributes = { [key: string]: unknown };

/** A group member as stored: D12, always a User. `display` is kept as the IdP sent it. */
export interface MemberRef {
  value: string;
  display?: string;
}

export interface UserRecord {
  id: string;
  /** RFC 3339 with milliseconds. */
  created: string;
  lastModified: string;
  /** Includes `userName` (string) and `active` (boolean) always; `externalId` when set. */
  attributes: ScimAttributes;
}

export interface GroupRecord {
  id: string;
  created: string;
  lastModified: string;
  /** Includes `displayName` always; `externalId` when set. */
  attributes: ScimAttributes;
  /** In insertion order. Empty when the caller asked for the group without members. */
  members: MemberRef[];
}

/** A group as a user's `groups` attribute shows it (RFC 7643 §4.1.2). */
export interface GroupMembership {
  groupId: string;
  displayName: string;
}
