// `rolegate serve --config FILE`: the process around the server: the config file and environment,
// the instance name, the workers (`proxy.workers`), the signals (SIGTERM/SIGINT drain, SIGHUP reload)
// and the exit codes.
import cluster from 'node:cluster';
import { availableParallelism, hostname } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { createLogger, type Logger } from '../lib/log.js';
import { loadConfigFile } from '../server/config/load.js';
import type { Config } from '../server/config/schema.js';
import { WORKER_ENV, WorkerPeers, superviseWorkers } from '../server/workers.js';
import { EXIT } from './args.js';
import { fail, oneLine } from './output.js';

/**
 * `rolegate serve` is a long-running daemon whose live heap is mostly the directory index. V8's
 * default heap growth lets the old generation grow to several times the live set after a burst of
 * requests (a SCIM import) and keeps it resident; measured with 100,000 users: 415 MiB resident for
 * a 75 MiB live heap. Growing by 30% per GC keeps memory near the live set for somewhat more
 * frequent old-generation collections, without a hard cap that a large directory could hit.
 */
function preferCompactHeap(): void {
  setFlagsFromString('--heap-growing-percent=30');
}

export async function runServe(configFile: string): Promise<void> {
  preferCompactHeap();
  const result = await loadConfigFile(configFile, process.env);
  if (!result.ok) return failToStart(EXIT.usage, result.problems.map((p) => `${configFile}: ${p.path}: ${p.message}`));
  const config = result.config;
  const processLogger = createLogger(config.log.level);
  const instance = process.env.ROLEGATE_INSTANCE ?? `${hostname()}:${process.pid}`;
  const workers = workerCount(config);
  if (workers > 1 && cluster.isPrimary) return supervise(workers, instance, processLogger);
  const peers = cluster.isWorker ? new WorkerPeers(Number(process.env[WORKER_ENV])) : undefined;
  // The workers share stdout: each line says which one wrote it.
  const logger = peers ? processLogger.child({ worker: peers.worker }) : processLogger;
  let server;
  try {
    // Loaded here, not at the top: a supervisor never loads the server's modules.
    const { startServer } = await import('../server/start.js');
    server = await startServer(config, { logger, instance, ...(peers ? { workers: peers } : {}) });
  } catch (err) {
    logger.error({ err }, 'start failed');
    logger.flush();
    return failToStart(EXIT.failure, [`cannot start: ${oneLine(err)}`]);
  }
  const running = server;
  let stopping = false;
  const stop = (signal: string, drainMs?: number) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    void running.close(drainMs === undefined ? undefined : { drainMs }).then(() => {
      logger.info('stopped');
      logger.flush();
      process.exit(EXIT.ok);
    });
  };
  if (peers === undefined) {
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  } else {
    // A worker hears a Ctrl+C twice (from the terminal, and forwarded by the supervisor): both drain
    // once.
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    // A worker whose supervisor is gone (kill -9, a crash) shuts down at once but in order: no new
    // connection can reach it (the supervisor held the listening sockets), so its sessions end now
    // with 57P01 `server shutting down` (no drainTimeout: a restarted `serve` needs this worker's audit
    // series, locked until it exits) and its audit log is written out and closed. node:cluster would
    // exit the worker on the spot, cutting the sessions without a word and dropping the audit lines
    // not yet written, unless the disconnect is marked as expected, which this listener does first.
    cluster.worker?.on('disconnect', () => {
      if (cluster.worker !== undefined) cluster.worker.exitedAfterDisconnect = true;
      stop('supervisor gone', 0);
    });
  }
  // SIGHUP re-reads the file: roles, credentials and certificates change; listeners and the store
  // stay. A file that no longer validates is reported and the running configuration kept.
  process.on('SIGHUP', () => {
    void loadConfigFile(configFile, process.env).then(async (next) => {
      if (!next.ok) {
        logger.error({ problems: next.problems.map((p) => `${p.path}: ${p.message}`) }, 'reload refused: config invalid');
        return;
      }
      await running.reload(next.config);
    }).catch((err: unknown) => logger.error({ err }, 'reload failed'));
  });
  process.on('unhandledRejection', (err) => {
    logger.fatal({ err }, 'unhandled rejection');
    logger.flush();
    process.exit(EXIT.failure);
  });
}

/**
 * Reports why `serve` cannot start. A single process then ends by itself (nothing keeps it alive); a
 * worker's IPC channel would keep it running, so it exits, and the supervisor sees the code.
 */
function failToStart(code: number, lines: readonly string[]): void {
  fail(code, lines);
  if (cluster.isWorker) process.exit(code);
}

/** `proxy.workers`, with `auto` as the number of CPUs this process may use. */
function workerCount(config: Readonly<Config>): number {
  return config.proxy.workers === 'auto' ? availableParallelism() : config.proxy.workers;
}

/**
 * The supervisor of `proxy.workers` (server/workers.ts): forwards SIGHUP and SIGTERM/SIGINT to the
 * workers and exits once they all have.
 */
function supervise(count: number, instance: string, logger: Logger): void {
  const supervisor = superviseWorkers({ count, instance, logger });
  process.on('SIGTERM', () => supervisor.stop('SIGTERM'));
  process.on('SIGINT', () => supervisor.stop('SIGINT'));
  process.on('SIGHUP', () => supervisor.reload());
  void supervisor.exited.then((code) => {
    logger.info({ code }, 'stopped');
    logger.flush();
    process.exit(code);
  });
}
