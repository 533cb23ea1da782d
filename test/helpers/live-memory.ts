// The resident memory a test process holds live: sampled right after a forced collection, so a bound on
// "memory held while streaming" measures what the code keeps, not garbage the collector has yet to reach.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

// Why: Node 24 collects the dead chunks of a 200 MB stream later than Node 20 does, and the RSS of the
// same bounded relay peaked 20–40 MB higher there (the live array buffers stayed under 5 MB). Sampling
// after a collection keeps the bound about the relay on every supported Node.
let collect: (() => void) | undefined;

function collector(): () => void {
  if (collect === undefined) {
    // The flag must be set before the context that exposes `gc` is created; `gc` works from then on.
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  return collect;
}

/** This process's RSS in bytes after a full collection. */
export function liveRss(): number {
  collector()();
  return process.memoryUsage().rss;
}

/** Samples `liveRss` every `everyMs` until stopped; `stop` returns the peak. */
export function liveRssSampler(everyMs = 100): { stop(): number } {
  let peak = liveRss();
  const timer = setInterval(() => (peak = Math.max(peak, liveRss())), everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, liveRss());
    },
  };
}
