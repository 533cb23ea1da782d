// The `directory.change` audit emitter the SCIM service calls after each committed write.

/** A member added to or removed from a group, named for a reader when the directory knows the user. */
export interface AuditMember {
  id: string;
  userName?: string;
}

/** One committed SCIM write. Names what changed and who is concerned, never values that could be secret. */
export interface DirectoryAuditEvent {
  resource: 'User' | 'Group';
  id: string;
  op: 'create' | 'replace' | 'patch' | 'delete';
  /** Which SCIM token wrote, by position (`scim-token#1`); never the token itself. */
  actor: string;
  /** The user's userName or the group's displayName (for a delete: as it was). */
  name: string | null;
  /** Names of the attributes that changed (`enterprise` for the enterprise extension). */
  changed: string[];
  /** Users: the new `active`, when it changed. */
  active?: boolean;
  /** Groups: who was added and removed. */
  members?: { added: AuditMember[]; removed: AuditMember[] };
  summary: string;
}

export type DirectoryAuditSink = (e: DirectoryAuditEvent) => void;
