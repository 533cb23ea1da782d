// The admin view of this instance's directory (docs/design.md §5 and §8): whether it is current, how far
// it applied the shared change log, its size, and a digest that is equal on instances that agree. With
// `proxy.workers` each worker holds its own copy, and the answer carries every worker's view.
import express, { type Router } from 'express';
import type { BearerTokens } from '../lib/bearer-tokens.js';
import { requireAdminToken } from './admin-auth.js';
import { sendForEveryWorker, type PerWorker } from './per-worker.js';

export interface DirectoryView {
  readonly instance: string;
  readonly store: 'sqlite' | 'postgres';
  readonly current: boolean;
  /** Why it is not current (absent when it is). */
  readonly reason?: string;
  /** The change-log position applied (postgres; "0" on sqlite). */
  readonly position: string;
  readonly persons: number;
  readonly groups: number;
  readonly memberships: number;
  /** A digest of the index's content, independent of order: equal on instances that agree. */
  readonly digest: string;
}

function viewJson(v: DirectoryView): DirectoryView {
  return {
    instance: v.instance, store: v.store, current: v.current, ...(v.reason === undefined ? {} : { reason: v.reason }),
    position: v.position, persons: v.persons, groups: v.groups, memberships: v.memberships, digest: v.digest,
  };
}

/** Mount at `/admin/directory`. `everyWorker`: with `proxy.workers`, every worker's view (this one's included). */
export function createDirectoryRouter(opts: {
  tokens: readonly string[] | BearerTokens;
  view: () => Promise<DirectoryView>;
  everyWorker?: () => Promise<PerWorker<DirectoryView>>;
}): Router {
  const router = express.Router();
  router.use(requireAdminToken(opts.tokens));
  router.get('/', async (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    await sendForEveryWorker(res, viewJson(await opts.view()), opts.everyWorker, 'directory view', viewJson);
  });
  return router;
}
