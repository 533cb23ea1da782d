// An admin answer for every worker of a `serve` (docs/design.md §8, Workers): the serving worker's own
// answer, in the single-process shape, plus `workers` with every worker's; 503 naming the workers whose
// part is missing, since some parts passed off as all of them would hide the others.
import type { Response } from 'express';
import { sendJson } from './admin-auth.js';

/** A worker whose part of an answer is not in it, and why. */
export interface MissingWorker {
  readonly worker: number;
  readonly why: 'not running' | 'no answer';
}

/** Every running worker's part (in worker order) and the workers whose part is missing. */
export interface PerWorker<T> {
  readonly parts: readonly (T & { readonly worker: number })[];
  readonly missing: readonly MissingWorker[];
}

/**
 * Answers with `own` alone when this process is the whole `serve` (`every` undefined), else with
 * `workers` too. `what` names the part in the 503's detail ("audit chain head").
 */
export async function sendForEveryWorker<T extends object>(
  res: Response,
  own: T,
  every: (() => Promise<PerWorker<T>>) | undefined,
  what: string,
  shape: (part: T) => T,
): Promise<void> {
  if (every === undefined) {
    sendJson(res, 200, own);
    return;
  }
  let all: PerWorker<T>;
  try {
    all = await every();
  } catch {
    sendJson(res, 503, { error: 'unavailable', detail: `The other workers' ${what}s could not be gathered`, ...own, workers: [] });
    return;
  }
  const workers = all.parts.map((p) => ({ worker: p.worker, ...shape(p) }));
  if (all.missing.length === 0) {
    sendJson(res, 200, { ...own, workers });
    return;
  }
  const which = all.missing.map((m) => `worker ${m.worker} (${m.why})`).join(', ');
  sendJson(res, 503, { error: 'unavailable', detail: `The ${what} of ${which} is not in this answer`, ...own, workers });
}
