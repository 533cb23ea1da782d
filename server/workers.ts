// Workers (docs/design.md §8, Workers): `proxy.workers: N` runs N full instances of rolegate in one
// `serve`, as node:cluster workers sharing the proxy and admin ports. The supervisor (the cluster's
// primary) only forks, restarts, forwards signals and routes the workers' questions to each other;
// everything the workers share (the directory, revocation, the session list, kill, cancel) travels
// through the postgres:// store exactly as between separate instances.
import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Gauge, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { Readiness } from '../admin/app.js';
import type { AuditHead } from '../admin/audit-head.js';
import type { DirectoryView } from '../admin/directory.js';
import type { MissingWorker, PerWorker } from '../admin/per-worker.js';
import type { Logger } from '../lib/log.js';

/** A worker that dies is started again after 100 ms, doubling up to 10 s while it keeps dying. */
export const RESTART_BACKOFF = { firstMs: 100, maxMs: 10_000, stableAfterMs: 30_000 } as const;
/** How long the supervisor waits for every worker's part of an answer (readiness may probe for 3 s). */
const GATHER_TIMEOUT_MS = 5_000;
/** The environment variable that tells a forked process which worker it is (1..N). */
export const WORKER_ENV = 'ROLEGATE_WORKER';

/** What a worker can be asked about itself (each has its answer in WorkerPeers #part). */
const QUESTIONS = ['ready', 'metrics', 'auditHead', 'directory'] as const;
type Question = (typeof QUESTIONS)[number];
type Metrics = MetricObjectWithValues<MetricValue<string>>[];

/** Every running worker's reply to one question, and the workers that gave none. */
type Gathered = { replies: { worker: number; data: unknown }[]; missing: MissingWorker[] };

/** The messages between the supervisor and its workers (IPC, JSON). */
type Message =
  | { rg: 'started' }
  | { rg: 'ask'; id: number; what: Question }
  | { rg: 'report'; id: number; what: Question }
  | { rg: 'reported'; id: number; data: unknown }
  | ({ rg: 'answer'; id: number } & Gathered);

/** Narrows what arrives on the IPC channel; anything else (prom-client's own messages) is ignored. */
function asMessage(raw: unknown): Message | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as Record<string, unknown>;
  const question = (QUESTIONS as readonly unknown[]).includes(m.what);
  switch (m.rg) {
    case 'started':
      return { rg: 'started' };
    case 'ask':
    case 'report':
      return typeof m.id === 'number' && question ? { rg: m.rg, id: m.id, what: m.what as Question } : undefined;
    case 'reported':
      return typeof m.id === 'number' ? { rg: 'reported', id: m.id, data: m.data } : undefined;
    case 'answer':
      return typeof m.id === 'number' && Array.isArray(m.replies) && Array.isArray(m.missing)
        ? { rg: 'answer', id: m.id, replies: m.replies as Gathered['replies'], missing: m.missing as MissingWorker[] }
        : undefined;
    default:
      return undefined;
  }
}

interface Slot {
  readonly k: number;
  worker: Worker | undefined;
  started: boolean;
  startedAt: number;
  failures: number;
  timer: NodeJS.Timeout | undefined;
}

export interface SupervisorOptions {
  count: number;
  /** The instance name; worker k is `<instance>-w<k>`. */
  instance: string;
  logger: Logger;
}

export interface Supervisor {
  /** Resolves with the exit code once every worker has exited (after `stop`, or a failed start). */
  readonly exited: Promise<number>;
  /** SIGHUP: every running worker re-reads the configuration. */
  reload(): void;
  /** SIGTERM: every worker drains; nothing is restarted any more. Idempotent. */
  stop(signal: string): void;
}

/**
 * Forks `count` workers and keeps them running. Until every worker has started once, a worker that
 * exits stops the others and the supervisor exits with its code (as `serve` does when it cannot
 * start); after that a worker that dies is logged and started again with backoff.
 */
export function superviseWorkers(opts: SupervisorOptions): Supervisor {
  const { logger } = opts;
  const slots: Slot[] = Array.from({ length: opts.count }, (_, i) => ({ k: i + 1, worker: undefined, started: false, startedAt: 0, failures: 0, timer: undefined }));
  let phase: 'starting' | 'running' | 'stopping' = 'starting';
  let exitCode = 0;
  let resolveExited: (code: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => (resolveExited = resolve));
  const gatherers = new Map<number, { replies: Map<number, unknown>; expected: Set<number>; finish: () => void }>();
  let nextGather = 1;

  const running = () => slots.filter((s): s is Slot & { worker: Worker } => s.worker !== undefined && s.started);

  function fork(slot: Slot): void {
    slot.timer = undefined;
    slot.started = false;
    const worker = cluster.fork({ [WORKER_ENV]: String(slot.k), ROLEGATE_INSTANCE: `${opts.instance}-w${slot.k}` });
    slot.worker = worker;
    worker.on('message', (raw: unknown) => onMessage(slot, worker, raw));
    worker.on('exit', (code, signal) => onExit(slot, worker, code, signal));
  }

  function onMessage(slot: Slot, worker: Worker, raw: unknown): void {
    const m = asMessage(raw);
    if (m === undefined) return;
    switch (m.rg) {
      case 'started':
        slot.started = true;
        slot.startedAt = Date.now();
        logger.info({ worker: slot.k, workerPid: worker.process.pid }, 'worker started');
        if (phase === 'starting' && slots.every((s) => s.started)) {
          phase = 'running';
          logger.info({ workers: opts.count }, 'all workers started');
        }
        return;
      case 'ask':
        gather(m.what, (replies, missing) => send(worker, { rg: 'answer', id: m.id, replies, missing }));
        return;
      case 'reported':
        gatherers.get(m.id)?.replies.set(slot.k, m.data);
        gatherers.get(m.id)?.finish();
        return;
      default:
        return;
    }
  }

  /** Asks every started worker `what` and hands on what came back within the timeout. */
  function gather(what: Question, done: (replies: Gathered['replies'], missing: MissingWorker[]) => void): void {
    const id = nextGather++;
    const asked = running();
    const notRunning: MissingWorker[] = slots.filter((s) => s.worker === undefined || !s.started).map((s) => ({ worker: s.k, why: 'not running' }));
    const replies = new Map<number, unknown>();
    const expected = new Set(asked.map((s) => s.k));
    const timer = setTimeout(complete, GATHER_TIMEOUT_MS);
    function complete(): void {
      clearTimeout(timer);
      gatherers.delete(id);
      const got = [...replies].map(([worker, data]) => ({ worker, data })).sort((a, b) => a.worker - b.worker);
      const silent: MissingWorker[] = [...expected].filter((k) => !replies.has(k)).map((k) => ({ worker: k, why: 'no answer' }));
      done(got, [...notRunning, ...silent].sort((a, b) => a.worker - b.worker));
    }
    const finish = () => {
      if ([...expected].every((k) => replies.has(k))) complete();
    };
    gatherers.set(id, { replies, expected, finish });
    for (const s of asked) send(s.worker, { rg: 'report', id, what });
    finish();
  }

  function onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    const wasStarted = slot.started;
    slot.started = false;
    // A worker that leaves takes its part of pending answers with it.
    for (const g of gatherers.values()) {
      g.expected.delete(slot.k);
      g.finish();
    }
    if (phase === 'stopping') {
      if (code !== 0) exitCode ||= code ?? 1;
      logger.info({ worker: slot.k, code, signal }, 'worker stopped');
      return finishIfAllGone();
    }
    if (phase === 'starting' && !wasStarted) {
      logger.error({ worker: slot.k, code, signal }, 'a worker could not start; stopping the others');
      exitCode = code !== null && code !== 0 ? code : 1;
      return stop('failed start');
    }
    // Dies after it ran: restart it; the backoff starts over only for a worker that had served a while
    // (one that dies again while starting keeps backing off).
    if (wasStarted && Date.now() - slot.startedAt >= RESTART_BACKOFF.stableAfterMs) slot.failures = 0;
    const delay = Math.min(RESTART_BACKOFF.firstMs * 2 ** slot.failures, RESTART_BACKOFF.maxMs);
    slot.failures++;
    logger.error({ worker: slot.k, workerPid: worker.process.pid, code, signal, restartInMs: delay }, 'worker exited unexpectedly; restarting it');
    slot.timer = setTimeout(() => fork(slot), delay);
  }

  function finishIfAllGone(): void {
    if (slots.every((s) => s.worker === undefined)) resolveExited(exitCode);
  }

  function stop(signal: string): void {
    if (phase === 'stopping') return;
    phase = 'stopping';
    logger.info({ signal, workers: running().length }, 'stopping workers');
    for (const s of slots) {
      if (s.timer !== undefined) clearTimeout(s.timer);
      s.timer = undefined;
      // Each worker drains its own sessions (proxy.drainTimeout), as a single `serve` does on SIGTERM.
      s.worker?.process.kill('SIGTERM');
    }
    finishIfAllGone();
  }

  for (const slot of slots) fork(slot);
  return {
    exited,
    reload() {
      for (const s of slots) s.worker?.process.kill('SIGHUP');
      logger.info({ workers: running().length }, 'reload forwarded to the workers');
    },
    stop,
  };
}

function send(to: Worker | NodeJS.Process, message: Message): void {
  // A worker that has just exited cannot be written to; its part is simply missing.
  if (to.send === undefined) return;
  try {
    to.send(message, undefined, undefined, () => undefined);
  } catch {
    // the channel closed under us: the same
  }
}

/** What this worker knows about itself, for the questions the other workers ask. */
export interface OwnState {
  ready(): Promise<Readiness>;
  metrics(): Promise<Metrics>;
  /** The head of this worker's own audit chain (each worker writes its own series). */
  auditHead(): AuditHead;
  /** This worker's view of its in-memory directory (each worker holds its own copy). */
  directory(): Promise<DirectoryView>;
}

/** What the admin listener serves when it answers for every worker of this `serve`. */
export interface WorkersView {
  ready(): Promise<Readiness>;
  metrics: { contentType: string; render(): Promise<string> };
  /** Every running worker's audit chain head, and which workers' heads are missing (and why). */
  auditHeads(): Promise<PerWorker<AuditHead>>;
  /** Every running worker's directory view, and which workers' views are missing (and why). */
  directories(): Promise<PerWorker<DirectoryView>>;
}

// Gauges whose sum across workers means nothing: the service is only as current as its least current
// worker, and as far along the log as its slowest.
const LEAST_OF = new Set(['rolegate_directory_current', 'rolegate_directory_log_position']);

/**
 * The worker's side: answers the supervisor's questions with `own`, and gives the admin listener
 * answers for the whole `serve` (readiness only when every worker is ready; metrics summed across
 * workers, as prom-client's AggregatorRegistry sums them).
 */
export class WorkerPeers {
  readonly #pending = new Map<number, (answer: Extract<Message, { rg: 'answer' }>) => void>();
  #nextId = 1;
  #own: OwnState | undefined;

  constructor(readonly worker: number) {
    process.on('message', (raw: unknown) => this.#onMessage(raw));
  }

  /** Tells the supervisor this worker serves; `own` answers the other workers from now on. */
  started(own: OwnState): void {
    this.#own = own;
    send(process, { rg: 'started' });
  }

  view(): WorkersView {
    return {
      ready: async () => combineReadiness(await this.#ask('ready')),
      metrics: {
        contentType: AggregatorRegistry.PROMETHEUS_CONTENT_TYPE,
        render: async () => combineMetrics(await this.#ask('metrics')),
      },
      auditHeads: async () => combineParts(await this.#ask('auditHead'), isAuditHead),
      directories: async () => combineParts(await this.#ask('directory'), isDirectoryView),
    };
  }

  #ask(what: Question): Promise<Extract<Message, { rg: 'answer' }>> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error('the supervisor did not answer'));
      }, GATHER_TIMEOUT_MS * 2);
      this.#pending.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      send(process, { rg: 'ask', id, what });
    });
  }

  #onMessage(raw: unknown): void {
    const m = asMessage(raw);
    if (m === undefined) return;
    if (m.rg === 'answer') {
      this.#pending.get(m.id)?.(m);
      this.#pending.delete(m.id);
      return;
    }
    if (m.rg !== 'report') return;
    const own = this.#own;
    if (own === undefined) return; // not started yet: the supervisor does not ask such a worker
    const id = m.id;
    void this.#part(own, m.what).then((data) => send(process, { rg: 'reported', id, data }));
  }

  /** This worker's part of an answer; a part it cannot give is one the combiners count as missing. */
  #part(own: OwnState, what: Question): Promise<unknown> {
    switch (what) {
      case 'ready':
        return own.ready().catch((): Readiness => ({ ok: false, reason: 'readiness check failed' }));
      case 'metrics':
        return own.metrics().catch(() => []);
      case 'auditHead':
        return Promise.resolve().then(() => own.auditHead()).catch(() => null);
      case 'directory':
        return own.directory().catch(() => null);
    }
  }
}

/** Ready only when every worker is: the proxy port hands connections to any of them. */
export function combineReadiness(answer: Gathered): Readiness {
  for (const r of answer.replies) {
    const state = r.data as Partial<Readiness> | null;
    if (state?.ok !== true) {
      const reason = state !== null && state.ok === false && typeof state.reason === 'string' ? state.reason : 'readiness unknown';
      return { ok: false, reason: `worker ${r.worker}: ${reason}` };
    }
  }
  const first = answer.missing[0];
  if (first !== undefined) return { ok: false, reason: `worker ${first.worker} ${first.why === 'not running' ? 'is not running' : 'did not answer'}` };
  return { ok: true };
}

/**
 * Every worker's part of an answer, in worker order. A reply that is not such a part (a worker that
 * could not produce its own) counts as missing: the admin API says 503 rather than pass some parts
 * off as all of them (admin/per-worker.ts).
 */
export function combineParts<T extends object>(answer: Gathered, isPart: (d: unknown) => d is T): PerWorker<T> {
  const parts: (T & { worker: number })[] = [];
  const missing = [...answer.missing];
  for (const r of answer.replies) {
    if (isPart(r.data)) parts.push({ ...r.data, worker: r.worker });
    else missing.push({ worker: r.worker, why: 'no answer' });
  }
  parts.sort((a, b) => a.worker - b.worker);
  missing.sort((a, b) => a.worker - b.worker);
  return { parts, missing };
}

function isObject(d: unknown): d is Record<string, unknown> {
  return typeof d === 'object' && d !== null;
}

export function isAuditHead(d: unknown): d is AuditHead {
  return isObject(d) && typeof d.instance === 'string' && typeof d.seq === 'number' && typeof d.hash === 'string' && typeof d.available === 'boolean'
    && (d.ts === null || typeof d.ts === 'string') && (d.file === null || typeof d.file === 'string');
}

export function isDirectoryView(d: unknown): d is DirectoryView {
  return isObject(d) && typeof d.instance === 'string' && (d.store === 'sqlite' || d.store === 'postgres') && typeof d.current === 'boolean'
    && typeof d.position === 'string' && typeof d.persons === 'number' && typeof d.groups === 'number'
    && typeof d.memberships === 'number' && typeof d.digest === 'string' && (d.reason === undefined || typeof d.reason === 'string');
}

/** Every worker's series summed into one exposition, plus how many workers the sum covers. */
export async function combineMetrics(answer: Gathered): Promise<string> {
  const parts = answer.replies.map((r) => (Array.isArray(r.data) ? (r.data as Metrics) : []).map((m) => (LEAST_OF.has(m.name) ? { ...m, aggregator: 'min' as const } : m)));
  const registry = AggregatorRegistry.aggregate(parts);
  const workers = new Gauge({ name: 'rolegate_workers', help: 'Workers of this serve by state; the other series sum the running ones', labelNames: ['state'], registers: [registry] });
  workers.set({ state: 'running' }, answer.replies.length);
  workers.set({ state: 'missing' }, answer.missing.length);
  return registry.metrics();
}
