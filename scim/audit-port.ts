// The `directory.change` audit emitter the SCIM service calls after each committed write.

/** One committed SCIM write. `summary` names what changed, never values that could be secret. */
export interface DirectoryAuditEvent {
  resource: 'User' | 'Group';
  id: string;
  op: 'create' | 'replace' | 'patch' | 'delete';
  /** Which SCIM token wrote, by position (`scim-token#1`); never the token itself. */
  actor: string;
  summary: string;
}

export type DirectoryAuditSink = (e: DirectoryAuditEvent) => void;
