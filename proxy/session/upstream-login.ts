// Who rolegate logs in upstream as (docs/design.md §2 step 7 and §7 step 2): the decided role with its
// configured credentials, or, with per-user provisioning, the person's own role with its own secret
// and the decided role as the session's starting role.
import type { PersonalRoleUnavailable } from '../authz/personal-roles.js';
import type { UpstreamCredentials } from '../upstream/index.js';
import type { RoleWithCredentials, SessionDeps } from './deps.js';

export type UpstreamIdentity =
  | {
      readonly kind: 'login';
      /** The startup packet's `user`: the decided role, or the person's own role. */
      readonly user: string;
      readonly credentials: UpstreamCredentials;
      /** The client's allow-listed parameters, plus `role` for a personal login. */
      readonly params: Readonly<Record<string, string>>;
      readonly personal: boolean;
    }
  | { readonly kind: 'unavailable'; readonly reason: PersonalRoleUnavailable };

/** Resolves the login for `rule` (the step 6 decision); waits for the person's role if it is due. */
export async function upstreamIdentity(
  deps: Pick<SessionDeps, 'personalRoles'>,
  decision: { readonly rule: RoleWithCredentials; readonly personId: string },
  params: Readonly<Record<string, string>>,
  signal: AbortSignal,
): Promise<UpstreamIdentity> {
  const { rule } = decision;
  if (deps.personalRoles === undefined) {
    // The config requires credentials for every role unless provisioning is per-user.
    if (rule.credentials === undefined) throw new Error(`role "${rule.role}" has no credentials`);
    return { kind: 'login', user: rule.role, credentials: rule.credentials, params, personal: false };
  }
  const login = await deps.personalRoles.loginFor(decision.personId, signal);
  if (login.kind === 'unavailable') return login;
  return {
    kind: 'login',
    user: login.role,
    credentials: { password: login.password },
    // `role` as a startup parameter sets current_user at login, checked by the server against the
    // role's memberships (member_can_set_role on 16+, is_member_of_role before). The server applies
    // startup parameters after the `-c` settings of `options` (process_startup_options), and both
    // outrank ALTER ROLE ... SET role, so nothing the client sends can change where it starts.
    // RESET ROLE comes back here (the session's default); SET ROLE goes only where a membership leads.
    params: { ...params, role: rule.role },
    personal: true,
  };
}
