// What the provisioner needs from the rest of rolegate, as ports it owns (docs/design.md §7): the
// directory (fresh from the store, the truth the database follows), the records of the roles it made
// (names and sealed secrets, kept in the store) and the configured role grants. server/ plugs the
// SCIM store and index in; nothing under provision/ imports scim/ or proxy/.

/** A group as role rules name it: by displayName, SCIM id or the IdP's externalId. */
export interface SubjectGroup {
  readonly id: string;
  readonly displayName: string;
  readonly externalId?: string;
}

/** A person as the provisioner reads them. */
export interface Subject {
  readonly id: string;
  readonly userName: string;
  readonly active: boolean;
  readonly groups: readonly SubjectGroup[];
}

export interface ProvisioningDirectory {
  /** Every person, from one consistent read of the store. */
  everyone(): Promise<Subject[]>;
  /** One person as the store has them now; undefined once deleted. */
  person(id: string): Promise<Subject | undefined>;
  /**
   * Called synchronously after each committed write this process sees, with the people it touched
   * (created, changed, deleted, a membership or a group of theirs changed).
   */
  onChanged(listener: (personIds: readonly string[]) => void): () => void;
}

/** A role rolegate made for a person, as the store keeps it until the role is dropped. */
export interface PersonalRoleRecord {
  readonly personId: string;
  /** The person's userName when the record was last written: names them after they are deleted. */
  readonly userName: string;
  /** The role's name in the database now (a rename updates it). */
  readonly roleName: string;
  /** The login secret sealed by secret-box.ts; never the plain secret. */
  readonly sealedSecret: string;
}

/** A claim either stored this record or found one; a name held by another person's record is refused. */
export type ClaimResult =
  | { readonly kind: 'stored' | 'existing'; readonly record: PersonalRoleRecord }
  | { readonly kind: 'name_taken'; readonly holder: string };

export interface PersonalRoleRecords {
  list(): Promise<PersonalRoleRecord[]>;
  get(personId: string): Promise<PersonalRoleRecord | undefined>;
  /** Stores `record` unless the person has one already (then returns theirs): several instances agree on one secret. */
  claim(record: PersonalRoleRecord): Promise<ClaimResult>;
  /** The role was renamed (or its secret replaced); false when the new name is another person's. */
  update(record: PersonalRoleRecord): Promise<boolean>;
  /** The role is gone from the database. */
  remove(personId: string): Promise<void>;
}

/** The configured `roles` as provisioning sees them (replaced on SIGHUP). */
export interface RoleGrants {
  /** Every configured role name, in config order. */
  roles(): readonly string[];
  /** The configured roles that these groups grant in any database: the person's memberships. */
  grantedBy(groups: readonly SubjectGroup[]): readonly string[];
}
