// Ends live sessions whose access a directory change took away (docs/design.md §2 step 9): every
// affected session decides again against the updated directory; the ones refused end with 57P01.
import { performance } from 'node:perf_hooks';
import type { Directory } from '../authz/directory.js';
import type { Metrics } from './metrics.js';
import type { SessionRegistry } from './registry.js';

/** Subscribes to the index's revocation events; returns the unsubscribe function. */
export function followRevocations(directory: Pick<Directory, 'onRevocation'>, registry: SessionRegistry, metrics: Metrics): () => void {
  return directory.onRevocation((ev) => {
    const t0 = performance.now();
    const persons = 'personId' in ev ? [ev.personId] : ev.personIds;
    let ended = 0;
    for (const personId of persons) {
      for (const session of registry.ofPerson(personId)) if (session.recheck()) ended++;
    }
    if (ended > 0) metrics.revocationSeconds.observe((performance.now() - t0) / 1000);
  });
}

/** Re-decides every live session, e.g. after SIGHUP replaced the roles. Returns how many ended. */
export function recheckAll(registry: SessionRegistry): number {
  let ended = 0;
  for (const s of registry.all()) if (s.recheck()) ended++;
  return ended;
}
