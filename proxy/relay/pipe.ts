// The pass-through between a logged-in client and its upstream connection: bytes both ways unchanged,
// each direction paused while the other side's write buffer is full, one end reported once.
import type { Duplex } from 'node:stream';

/** Why the relay stopped (docs/design.md §6 session.end reasons the relay itself can see). */
export type RelayEndReason = 'client_exit' | 'upstream_closed' | 'error';

export interface RelayEndInfo {
  /** Bytes received from the client (and written to the server). */
  readonly bytesIn: number;
  /** Bytes received from the server (and written to the client). */
  readonly bytesOut: number;
  /** The socket error (with `client_exit`/`upstream_closed`) or tap violation (`error`); for the log, never for the peer. */
  readonly error?: Error;
}

/** The part of a message tap the relay uses. */
export interface Tap {
  push(chunk: Buffer): void;
  readonly violation: Error | undefined;
}

export interface RelayTaps {
  readonly fromClient?: Tap;
  readonly fromServer?: Tap;
}

export interface RelayOptions {
  /**
   * Looks at each client chunk before the tap: returning true keeps the chunk from the server and
   * ends the relay as `client_exit` (a client's Terminate, so its upstream connection can be reused).
   */
  readonly keepClientChunk?: (chunk: Buffer) => boolean;
  /**
   * The server socket's reads without its stream layer (proxy/upstream/transport.ts `DirectReads`):
   * each chunk is a view of the socket's read buffer, valid until the sink returns unless the sink
   * says it kept it. Data already in the socket's Readable (unshifted) still comes as 'data'.
   */
  readonly serverReads?: {
    attach(sink: (chunk: Buffer) => boolean): void;
    detach(): void;
  };
}

export interface Relay {
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly stopped: boolean;
  /**
   * Stops relaying without calling `onEnd` (the session is ending for its own reason): removes the
   * relay's listeners and pauses both sockets, leaving them open for the caller to end or destroy.
   */
  stop(): void;
}

/**
 * Relays `client` <-> `server` until either side ends, closes or fails, or a tap finds a violation
 * (an audit that cannot follow the stream must not let it continue). Then, once: every listener the
 * relay added is removed, both sockets are paused (so no byte is dropped on the floor), and
 * `onEnd(reason, info)` is called. The sockets are left to the caller, who must keep its own 'error'
 * listeners on them for their whole life. Bytes already read past the login (the upstream's `pending`,
 * the framer's `takeRest()`) should be `unshift`ed onto the sockets before calling this.
 */
export function relay(
  client: Duplex,
  server: Duplex,
  taps: RelayTaps,
  onEnd: (reason: RelayEndReason, info: RelayEndInfo) => void,
  opts: RelayOptions = {},
): Relay {
  const keepClientChunk = opts.keepClientChunk;
  const fromClient = taps.fromClient;
  const fromServer = taps.fromServer;
  let bytesIn = 0;
  let bytesOut = 0;
  let stopped = false;

  function onClientData(chunk: Buffer): void {
    bytesIn += chunk.length;
    if (keepClientChunk !== undefined && keepClientChunk(chunk)) {
      finish('client_exit');
      return;
    }
    if (fromClient !== undefined && !tap(fromClient, chunk)) return;
    if (!server.write(chunk)) client.pause();
  }
  function onServerData(chunk: Buffer): void {
    bytesOut += chunk.length;
    if (fromServer !== undefined && !tap(fromServer, chunk)) return;
    if (!client.write(chunk)) server.pause();
  }
  // A chunk the client socket has not finished writing (queued behind another write, or partly
  // written) is still referenced by it: the read buffer it lives in must not be reused.
  function onServerRead(chunk: Buffer): boolean {
    onServerData(chunk);
    return client.writableLength > 0;
  }
  // The tap sees each chunk before it is forwarded, so an audit record can precede the effect.
  function tap(t: Tap, chunk: Buffer): boolean {
    try {
      t.push(chunk);
    } catch (err) {
      finish('error', err instanceof Error ? err : new Error('tap callback failed', { cause: err }));
      return false;
    }
    if (t.violation !== undefined) {
      finish('error', t.violation);
      return false;
    }
    return true;
  }
  function onServerDrain(): void {
    client.resume();
  }
  function onClientDrain(): void {
    server.resume();
  }
  function onClientEnd(): void {
    finish('client_exit');
  }
  function onServerEnd(): void {
    finish('upstream_closed');
  }
  // A socket error is that side going away (a reset from a killed client, a backend that vanished):
  // the audit names the side, not the errno; 'error' stays for a stream the taps cannot follow.
  function onClientError(err: Error): void {
    finish('client_exit', err);
  }
  function onServerError(err: Error): void {
    finish('upstream_closed', err);
  }

  // 'end' is the peer's FIN; 'close' also covers destroy() and resets that come without an 'end'.
  client.on('data', onClientData).on('drain', onClientDrain).on('end', onClientEnd).on('close', onClientEnd);
  client.on('error', onClientError);
  server.on('data', onServerData).on('drain', onServerDrain).on('end', onServerEnd).on('close', onServerEnd);
  server.on('error', onServerError);
  opts.serverReads?.attach(onServerRead);

  function detach(): void {
    stopped = true;
    opts.serverReads?.detach();
    client.off('data', onClientData).off('drain', onClientDrain).off('end', onClientEnd).off('close', onClientEnd);
    client.off('error', onClientError);
    server.off('data', onServerData).off('drain', onServerDrain).off('end', onServerEnd).off('close', onServerEnd);
    server.off('error', onServerError);
    client.pause();
    server.pause();
  }

  function finish(reason: RelayEndReason, error?: Error): void {
    if (stopped) return;
    detach();
    onEnd(reason, error === undefined ? { bytesIn, bytesOut } : { bytesIn, bytesOut, error });
  }

  // A side that ended or failed before the relay started would never emit again.
  const gone = (s: Duplex): boolean => s.destroyed || s.readableEnded;
  if (gone(client) || gone(server)) {
    process.nextTick(() => finish(gone(client) ? 'client_exit' : 'upstream_closed'));
  } else {
    client.resume();
    server.resume();
  }

  return {
    get bytesIn(): number {
      return bytesIn;
    },
    get bytesOut(): number {
      return bytesOut;
    },
    get stopped(): boolean {
      return stopped;
    },
    stop(): void {
      if (!stopped) detach();
    },
  };
}
