// Checking a connection out of a node-postgres pool without letting its death crash the process.
//
// pg-pool listens for 'error' only on idle clients. A checked-out client whose server goes away (a
// restart, pg_terminate_backend, a failover) emits 'error' when its socket ends, even when the query
// in flight already received the failure; with no listener, Node throws it as an uncaught exception
// and the whole process exits. Every checkout in rolegate goes through here, so there is a listener
// for as long as the client is ours; the failure itself reaches the query in flight and is handled there.
import type pg from 'pg';

/** A checked-out client; `done` returns it (or discards it, when `broken`) exactly once. */
export type CheckedOutClient = pg.PoolClient & { done(broken?: boolean): void };

/** `pool.connect()` with an 'error' listener held until `done`. */
export async function checkout(pool: pg.Pool): Promise<CheckedOutClient> {
  const client = await pool.connect();
  let dead = false;
  const onError = (): void => {
    dead = true;
  };
  client.on('error', onError);
  return Object.assign(client, {
    done(broken = false) {
      client.off('error', onError);
      // A client that reported an error is never offered to the next caller.
      client.release(broken || dead);
    },
  });
}
