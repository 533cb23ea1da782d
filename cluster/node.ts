// One instance's membership of the cluster on a shared PostgreSQL store (docs/design.md §8): its
// registration and heartbeat, the listening connection, the directory follower, the shared session
// list, kill and cancel across instances, and the pruning of the change log. The composition root
// plugs the directory index and the session registry in through the ports below.
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../lib/log.js';
import { loadAnnouncementKeys, type AnnouncementKeys } from '../lib/announcement-seal.js';
import { readAnnouncement } from './announcement.js';
import { pruneLog, readLog, type LoggedWrite } from './change-log.js';
import { DirectoryFollower, type FollowerStatus } from './follower.js';
import { deregister, heartbeat, liveInstances, registerInstance } from './instances.js';
import { ClusterListener } from './listener.js';
import { decodeMessage, encodeMessage, instanceChannel, type ClusterMessage } from './messages.js';
import { SessionMirror, instanceOfSession, otherInstancesSessions, type SessionEntry } from './sessions.js';

export interface ClusterSettings {
  /** The directory store's postgres:// URL: the cluster shares the store's database. */
  storeUrl: string;
  /** This instance's name in the session list. */
  name: string;
  /** The NOTIFY channel the store announces committed writes on. */
  changeChannel: string;
  /**
   * The tag this process's store puts on its writes and their announcements (StoreOptions.origin).
   * Announcements of this process's own writes are not read back from the log: the store hands each
   * of its batches to caughtUpTo before answering it, which applies it (from memory when nothing lies
   * between). Reading them again cost the writing instance one read per batch, and that read, under
   * way when the batch came to caughtUpTo, sent the batch itself through the log as well.
   */
  origin: string;
  /** How often this instance reports itself alive (`directory.heartbeat`). */
  heartbeatMs: number;
  /** Change-log rows older than this are pruned even if a live instance still lacks them (`directory.changeRetention`). */
  retentionMs: number;
  logger: Logger;
}

/** The directory this instance keeps: the store's snapshot and codec, and the index they fill. */
export interface DirectoryPort<S, C> {
  snapshot(): Promise<{ snapshot: S; position: string }>;
  decode(payload: unknown): C;
  resync(snapshot: S): void;
  apply(changes: C): void;
}

/** This instance's live sessions. */
export interface LocalSessionsPort {
  list(): readonly SessionEntry[];
  /** Ends a live session here (57P01 terminated by administrator); false when there is none. */
  kill(id: string): boolean;
  /** A CancelRequest with a key this instance issued; the secret is checked in constant time there. */
  cancel(pid: number, secret: Buffer): void;
}

/** What ending a session held by another instance came to. */
export type RemoteKill = 'ended' | 'not_found' | 'no_answer';

/** An instance silent for this many heartbeats is dead: its sessions leave the list, its log position stops counting. */
export const EXPIRY_BEATS = 5;
/** The log is pruned every this many heartbeats. */
const PRUNE_EVERY_BEATS = 5;
const KILL_REPLY_TIMEOUT_MS = 5_000;
/** Forwarded cancels in flight at once; more are dropped (a CancelRequest is unauthenticated: no amplification). */
const MAX_CANCELS_IN_FLIGHT = 32;
/** A forged announcement is logged at most this often (the metric counts every one). */
const FORGED_WARN_EVERY_MS = 60_000;

export class ClusterNode<S, C> {
  readonly id = randomUUID().replaceAll('-', '');
  readonly #s: ClusterSettings;
  readonly #expiryMs: number;
  readonly #pool: pg.Pool;
  readonly #sessions: LocalSessionsPort;
  readonly #follower: DirectoryFollower<S, C>;
  readonly #mirror: SessionMirror;
  readonly #listener: ClusterListener;
  readonly #replies = new Map<string, (ended: boolean) => void>();
  /** Live instances by slot, refreshed every heartbeat: where a forwarded cancel goes. */
  #bySlot = new Map<number, string>();
  #slot = 0;
  #beats = 0;
  #cancelsInFlight = 0;
  /** Verify and open the writes other instances' announcements carry (undefined: the store has no key; every batch is read). */
  #announcementKeys: AnnouncementKeys | undefined;
  #forgedAnnouncements = 0;
  #forgedWarnedAt = -Infinity;

  private constructor(settings: ClusterSettings, directory: DirectoryPort<S, C>, sessions: LocalSessionsPort) {
    this.#s = settings;
    this.#expiryMs = settings.heartbeatMs * EXPIRY_BEATS;
    this.#sessions = sessions;
    const { logger } = settings;
    // Background work gets its own few connections, apart from the store's, so a burst of SCIM writes
    // never makes a follower or a heartbeat wait for a connection.
    this.#pool = new pg.Pool({
      connectionString: settings.storeUrl,
      application_name: 'rolegate-cluster',
      max: 4,
      idleTimeoutMillis: 60_000,
      connectionTimeoutMillis: 5_000,
      query_timeout: 30_000,
    });
    this.#pool.on('error', (err) => logger.debug({ err }, 'cluster connection dropped while idle'));
    this.#follower = new DirectoryFollower<S, C>({
      read: (position) => readLog(this.#pool, position),
      snapshot: () => directory.snapshot(),
      decode: (payload) => directory.decode(payload),
      target: { resync: (snap) => directory.resync(snap), apply: (changes) => directory.apply(changes) },
      logger,
    });
    this.#mirror = new SessionMirror({ sql: this.#pool, instanceId: this.id, list: () => sessions.list(), logger });
    this.#listener = new ClusterListener({
      client: () =>
        new pg.Client({
          connectionString: settings.storeUrl,
          // Recognisable in pg_stat_activity (63 bytes at most, NAMEDATALEN - 1).
          application_name: Buffer.from(`rolegate-listen ${settings.name}`).subarray(0, 63).toString(),
          keepAlive: true,
          connectionTimeoutMillis: 5_000,
        }),
      channels: [settings.changeChannel, instanceChannel(this.id)],
      onNotification: (channel, payload) => (channel === settings.changeChannel ? this.#announced(payload) : this.#receive(payload)),
      onConnected: () => this.#follower.listening(),
      onLost: () => this.#follower.lost(),
      heartbeat: { everyMs: settings.heartbeatMs, timeoutMs: Math.max(2 * settings.heartbeatMs, 1_000), run: (client) => this.#beat(client) },
      logger,
    });
  }

  /**
   * Registers, LISTENs and loads the whole directory; resolves when this instance is current, so the
   * composition root can start the listeners after it (no login before the first full load).
   */
  static async join<S, C>(settings: ClusterSettings, directory: DirectoryPort<S, C>, sessions: LocalSessionsPort): Promise<ClusterNode<S, C>> {
    const node = new ClusterNode(settings, directory, sessions);
    try {
      node.#slot = await registerInstance(node.#pool, { id: node.id, name: settings.name, expiryMs: node.#expiryMs });
      node.#announcementKeys = await loadAnnouncementKeys(node.#pool);
      await node.#refreshInstances(node.#pool);
      await node.#listener.start();
    } catch (err) {
      await node.stop();
      throw err;
    }
    settings.logger.info({ slot: node.#slot, instance: settings.name }, 'joined the cluster');
    return node;
  }

  /** This instance's number, encoded in the cancel keys it issues. */
  get slot(): number {
    return this.#slot;
  }

  get status(): FollowerStatus {
    return this.#follower.status;
  }

  get position(): string {
    return this.#follower.position;
  }

  get logReads(): number {
    return this.#follower.logReads;
  }

  get reloads(): number {
    return this.#follower.reloads;
  }

  /** Announcements on the change channel that were signed but did not verify (someone else NOTIFYing there). */
  get forgedAnnouncements(): number {
    return this.#forgedAnnouncements;
  }

  /** The store's afterCommit: resolves once this instance's directory holds the write at `position`. */
  caughtUpTo(position: string, written: readonly LoggedWrite[] = []): Promise<void> {
    return this.#follower.caughtUpTo(position, written);
  }

  /** A local session started or ended. */
  sessionsChanged(): void {
    this.#mirror.changed();
  }

  /** The live sessions of every other live instance. */
  otherSessions(): Promise<object[]> {
    return otherInstancesSessions(this.#pool, { exceptInstance: this.id, expiryMs: this.#expiryMs });
  }

  /** Ends a session that another instance holds: asks it over NOTIFY and waits for its answer. */
  async endElsewhere(session: string): Promise<RemoteKill> {
    const holder = await instanceOfSession(this.#pool, { session, expiryMs: this.#expiryMs });
    if (holder === undefined || holder === this.id) return 'not_found';
    const req = randomUUID();
    const answer = new Promise<RemoteKill>((resolve) => {
      const timer = setTimeout(() => {
        this.#replies.delete(req);
        resolve('no_answer');
      }, KILL_REPLY_TIMEOUT_MS);
      timer.unref();
      this.#replies.set(req, (ended) => {
        clearTimeout(timer);
        this.#replies.delete(req);
        resolve(ended ? 'ended' : 'not_found');
      });
    });
    try {
      await this.#send(holder, { op: 'kill', session, req, from: this.id });
    } catch (err) {
      this.#replies.get(req)?.(false);
      throw err;
    }
    return answer;
  }

  /**
   * A CancelRequest whose key another instance issued (its slot is in the key's process id): passed
   * to that instance, which checks the secret. Like PostgreSQL, nobody is told how it went.
   */
  forwardCancel(slot: number, pid: number, secret: Buffer): void {
    const to = this.#bySlot.get(slot);
    if (to === undefined || to === this.id || this.#cancelsInFlight >= MAX_CANCELS_IN_FLIGHT) return;
    this.#cancelsInFlight++;
    this.#send(to, { op: 'cancel', pid, secret: secret.toString('hex') })
      .catch((err: unknown) => this.#s.logger.warn({ err }, 'cancel forwarding failed'))
      .finally(() => this.#cancelsInFlight--);
  }

  /** Leaves the cluster: stops listening, removes this instance's row and sessions, closes connections. */
  async stop(): Promise<void> {
    this.#follower.stop();
    this.#mirror.stop();
    await this.#listener.stop();
    for (const reply of [...this.#replies.values()]) reply(false);
    await deregister(this.#pool, this.id).catch((err: unknown) => this.#s.logger.warn({ err }, 'could not leave the cluster cleanly; the instance will expire'));
    await this.#pool.end().catch(() => undefined);
  }

  /** One heartbeat, on the listening connection (so that it also proves that connection alive). */
  async #beat(client: pg.Client): Promise<void> {
    const alive = await heartbeat(client, { id: this.id, position: this.#follower.position, expiryMs: this.#expiryMs });
    if (!alive) {
      // Silent too long (a pause, a partition): the others counted this instance dead, removed its
      // sessions from the list and stopped keeping the log for it. Back in, with every session anew.
      this.#slot = await registerInstance(this.#pool, { id: this.id, name: this.#s.name, expiryMs: this.#expiryMs, preferredSlot: this.#slot });
      this.#mirror.forget();
      this.#s.logger.warn({ slot: this.#slot }, 'this instance had expired; registered again');
    }
    await this.#refreshInstances(client);
    void this.#mirror.flush();
    if (++this.#beats % PRUNE_EVERY_BEATS === 0) {
      pruneLog(this.#pool, { expiryMs: this.#expiryMs, retentionMs: this.#s.retentionMs }).then(
        ({ horizon, pruned }) => {
          if (pruned > 0) this.#s.logger.debug({ horizon, pruned }, 'change log pruned');
        },
        (err: unknown) => this.#s.logger.warn({ err }, 'change log not pruned'),
      );
    }
  }

  async #refreshInstances(sql: pg.Pool | pg.Client): Promise<void> {
    const live = await liveInstances(sql, this.#expiryMs);
    this.#bySlot = new Map(live.map((i) => [i.slot, i.id]));
  }

  #send(to: string, message: ClusterMessage): Promise<unknown> {
    return this.#pool.query('SELECT pg_notify($1, $2)', [instanceChannel(to), encodeMessage(message)]);
  }

  /**
   * A batch committed. This process's own were applied before they were answered (`origin`); another
   * instance's signed rows are applied as they came when they follow on from this instance's position
   * (the follower checks), and anything else is read from the log. The origin is not verified: a
   * forged one can only spare the read its own announcement would have caused.
   */
  #announced(payload: string): void {
    const a = readAnnouncement(payload, this.#announcementKeys);
    if (a.forged) {
      this.#forgedAnnouncements++;
      // Someone other than rolegate NOTIFYs on the channel: worth an operator's attention, once a minute at most.
      const now = Date.now();
      if (now - this.#forgedWarnedAt >= FORGED_WARN_EVERY_MS) {
        this.#forgedWarnedAt = now;
        this.#s.logger.warn({ forged: this.#forgedAnnouncements, channel: this.#s.changeChannel }, 'a signed change announcement did not verify: a role other than rolegate is NOTIFYing on the change channel; ignored, the log was read instead');
      }
    }
    if (a.origin === this.#s.origin) return;
    if (a.writes !== undefined) this.#follower.announced(a.writes);
    else this.#follower.wake();
  }

  #receive(payload: string): void {
    const m = decodeMessage(payload);
    if (m === undefined) {
      this.#s.logger.warn('ignored an unreadable cluster message');
      return;
    }
    switch (m.op) {
      case 'kill': {
        const ended = this.#sessions.kill(m.session);
        this.#send(m.from, { op: 'kill-reply', req: m.req, ended }).catch((err: unknown) =>
          this.#s.logger.warn({ err }, 'could not answer a kill request'),
        );
        return;
      }
      case 'kill-reply':
        this.#replies.get(m.req)?.(m.ended);
        return;
      case 'cancel':
        this.#sessions.cancel(m.pid, Buffer.from(m.secret, 'hex'));
        return;
    }
  }
}
