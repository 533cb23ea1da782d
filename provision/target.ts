// The database cluster rolegate provisions roles in, through provisioning.adminUrl: a small pool,
// the server's version, a per-person advisory lock, and short-lived connections to the other
// databases of the cluster (REASSIGN/DROP OWNED run per database).
import { createHash } from 'node:crypto';
import pg from 'pg';
import { checkout } from '../lib/pg-checkout.js';
import { ProvisionError, ProvisionErrorCode } from './errors.js';

/** Passes run in parallel for different people; one connection each. */
const POOL_SIZE = 4;
/** No provisioning statement may hang for ever (a lock held by a stuck session, a dead server). */
const STATEMENT_TIMEOUT_MS = 30_000;
const CONNECT_TIMEOUT_MS = 5_000;
/**
 * The advisory lock space of per-person locks ("RGLP"): with the person's hash as the second key,
 * several rolegate instances never run one person's steps at the same time.
 */
export const LOCK_CLASS = 0x52474c50;

export interface ServerInfo {
  /** server_version_num, e.g. 150018. */
  readonly versionNum: number;
  /** PostgreSQL 16+: memberships have INHERIT/SET options and CREATEROLE's new rules apply. */
  readonly membershipOptions: boolean;
  /** The provisioning login. */
  readonly login: string;
}

export class TargetDatabase {
  readonly #url: string;
  readonly #pool: pg.Pool;
  /** The database of provisioning.adminUrl: its own work needs no extra connection. */
  readonly database: string;
  #info: ServerInfo | undefined;

  constructor(url: string, opts: { onBackgroundError: (err: unknown) => void }) {
    this.#url = url;
    // libpq's default: without a database in the URL, the one named like the user.
    const parsed = new URL(url);
    this.database = decodeURIComponent(parsed.pathname.slice(1)) || decodeURIComponent(parsed.username);
    this.#pool = new pg.Pool({
      connectionString: url,
      max: POOL_SIZE,
      application_name: 'rolegate-provisioning',
      statement_timeout: STATEMENT_TIMEOUT_MS,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    // Without a listener, an idle connection that the server drops would crash the process.
    this.#pool.on('error', opts.onBackgroundError);
  }

  /** Connects (if needed) and reads the server's version and the login's name. */
  async info(): Promise<ServerInfo> {
    if (this.#info !== undefined) return this.#info;
    const { rows } = await this.#pool.query<{ v: string; login: string }>(
      `SELECT current_setting('server_version_num') AS v, current_user AS login`,
    );
    const versionNum = Number(rows[0]?.v ?? 0);
    this.#info = { versionNum, membershipOptions: versionNum >= 160000, login: rows[0]?.login ?? '' };
    return this.#info;
  }

  query<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    return this.#pool.query<R>(sql, params);
  }

  /** Runs `fn` on one pooled connection. */
  async withClient<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await checkout(this.#pool);
    let broken = false;
    try {
      return await fn(c);
    } catch (err) {
      if (!(err instanceof pg.DatabaseError)) broken = true;
      throw err;
    } finally {
      c.done(broken);
    }
  }

  /** Runs `fn` on one connection while it holds the person's advisory lock (session level). */
  async withPersonLock<T>(personId: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await checkout(this.#pool);
    const key = [LOCK_CLASS, personKey(personId)];
    let broken = false;
    try {
      await c.query('SELECT pg_advisory_lock($1::int4, $2::int4)', key);
      try {
        return await fn(c);
      } catch (err) {
        // Outside a transaction ROLLBACK only warns; a connection that cannot even do that is gone.
        await c.query('ROLLBACK').catch(() => (broken = true));
        throw err;
      } finally {
        await c.query('SELECT pg_advisory_unlock($1::int4, $2::int4)', key).catch(() => (broken = true));
      }
    } catch (err) {
      if (!(err instanceof pg.DatabaseError)) broken = true;
      throw err;
    } finally {
      // A connection in an unknown state is closed, which also drops any lock it still held.
      c.done(broken);
    }
  }

  /** A connection of its own to another database of the same cluster, closed after `fn`. */
  async inDatabase<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
    const url = new URL(this.#url);
    url.pathname = `/${encodeURIComponent(database)}`;
    const c = new pg.Client({
      connectionString: url.toString(),
      application_name: 'rolegate-provisioning',
      statement_timeout: STATEMENT_TIMEOUT_MS,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}

/** A person's lock key: 32 bits of SHA-256 of the SCIM id. A collision only serialises two people. */
export function personKey(personId: string): number {
  return createHash('sha256').update(personId, 'utf8').digest().readInt32BE(0);
}

/**
 * True for failures of the connection rather than of a statement: the server is down or unreachable,
 * refuses the login or the database, is shutting down or full. Those stop all provisioning until it
 * answers again; a statement's own error concerns one person.
 */
export function isConnectionFailure(err: unknown): boolean {
  if (err instanceof ProvisionError) return err.code === ProvisionErrorCode.unreachable;
  if (!(err instanceof pg.DatabaseError)) return true;
  const code = err.code ?? '';
  return /^(08|28|3D|53|57P)/.test(code);
}

/** The server answered and refused the login or the database: credentials, pg_hba, a database that does not exist. */
export function isLoginRefused(err: unknown): boolean {
  return err instanceof pg.DatabaseError && /^(28|3D)/.test(err.code ?? '');
}
