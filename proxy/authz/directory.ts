// The directory port the data path owns (docs/design.md §2 steps 5-6 and 9, §8): who an identity names,
// their groups, the news that may take access away from live sessions, and whether the directory can
// be trusted right now. The composition root (server/) builds it from the SCIM directory index and, on
// a shared store, the instance's change-log follower, so nothing under proxy/ imports scim/.

/** A group as role rules name it: by displayName, SCIM id or the IdP's externalId. */
export interface GroupInfo {
  readonly id: string;
  readonly displayName: string;
  readonly externalId?: string;
}

/** One person as of the lookup; the directory hands out frozen views. */
export interface Person {
  readonly id: string;
  readonly userName: string;
  readonly active: boolean;
  /** Direct memberships; an inactive person keeps them (D25). */
  readonly groups: readonly GroupInfo[];
}

/**
 * Who an identity names (docs/design.md §2 step 5): a userName match is final, active or not; only
 * without one may exactly one active holder of the address in emails be the person. `ambiguous` fails
 * closed.
 */
export type PersonMatch =
  | { readonly status: 'active'; readonly person: Person; readonly via: 'userName' | 'email' }
  | { readonly status: 'inactive'; readonly person: Person; readonly via: 'userName' | 'email' }
  | { readonly status: 'unknown' }
  | { readonly status: 'ambiguous' };

/** A committed change that may have taken access from these people: their sessions decide again. */
export type RevocationNotice = { readonly personId: string } | { readonly personIds: readonly string[] };

export interface Directory {
  /** A case fold and a few Map lookups: no I/O on the login path. */
  findPerson(identity: string): PersonMatch;
  /** Called after the directory applied each change; returns the unsubscribe function. */
  onRevocation(listener: (notice: RevocationNotice) => void): () => void;
  /**
   * False while this instance cannot vouch that the directory is current (docs/design.md §8: loading,
   * the store unreachable, writes of other instances not yet caught up): no login is decided on it.
   */
  isCurrent(): boolean;
}
