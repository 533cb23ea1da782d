// The port through which the data path gets a person's own database role in per-user provisioning
// (docs/design.md §7 step 2): its name and login secret, once the role is in step with the directory.
// The provisioner satisfies it; server/ plugs one into the other, so proxy/ never imports provision/.

/** Why a person's own role cannot be used now; the audit reason is `personal_role:<reason>`. */
export type PersonalRoleUnavailable = 'pending' | 'conflict' | 'failed' | 'retained' | 'inactive' | 'unreachable' | 'stopped';

export type PersonalLogin =
  | { readonly kind: 'ready'; readonly role: string; readonly password: string }
  | { readonly kind: 'unavailable'; readonly reason: PersonalRoleUnavailable };

export interface PersonalRoles {
  /**
   * The person's role and secret once the role reflects the directory as this process knows it;
   * waits for a provisioning pass that is due, never past `signal` (the login deadline).
   */
  loginFor(personId: string, signal: AbortSignal): Promise<PersonalLogin>;
  /**
   * The database refused the login as the person's role: `secret` (its password, changed by hand:
   * set it again) or `role` (the starting role: its memberships are behind; compare again).
   */
  upstreamRefused(personId: string, what: 'secret' | 'role'): void;
}
