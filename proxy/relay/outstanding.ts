// What a client has asked of its server that the server has not answered yet, counted from the
// message boundaries the relay taps report. A pooled upstream connection is only as clean as this
// count proves it: each Query, FunctionCall and Sync owes exactly one ReadyForQuery, and an
// extended-protocol message after the last Sync owes a Sync (until then the server may be in
// ignore-till-Sync, where it silently drops every message, a reset query included).
import { BackendType, FrontendType } from '../wire/message-types.js';

/** One table lookup per message: what a frontend message type does to the count. */
const OWES_READY = new Uint8Array(256);
const EXTENDED = new Uint8Array(256);
OWES_READY[FrontendType.query] = 1;
OWES_READY[FrontendType.functionCall] = 1;
OWES_READY[FrontendType.sync] = 1;
for (const t of [FrontendType.parse, FrontendType.bind, FrontendType.describe, FrontendType.execute, FrontendType.close, FrontendType.flush]) {
  EXTENDED[t] = 1;
}

/**
 * Counts requests and answers of one session. A COPY needs no count of its own: it runs inside the
 * Query that started it, whose ReadyForQuery only comes once the COPY is over.
 */
export class Outstanding {
  /** ReadyForQuery messages owed by the server. */
  #owed = 0;
  /** An extended-protocol message was sent after the last Sync. */
  #unsynced = false;
  /** The server answered more than was asked: the count can no longer be trusted. */
  #confused = false;
  /** Transaction status byte of the last ReadyForQuery ('I', 'T' or 'E'). */
  #status: number;

  constructor(initialStatus: string) {
    this.#status = initialStatus.charCodeAt(0);
  }

  /** A whole client message passed toward the server. */
  sent(type: number): void {
    if (OWES_READY[type] === 1) {
      this.#owed++;
      if (type === FrontendType.sync) this.#unsynced = false;
    } else if (EXTENDED[type] === 1) {
      this.#unsynced = true;
    }
  }

  /** A whole server message passed toward the client; `first` is its first body byte. */
  received(type: number, first: number): void {
    if (type !== BackendType.readyForQuery) return;
    if (this.#owed === 0) this.#confused = true;
    else this.#owed--;
    this.#status = first;
  }

  /** The server may still be working for the client, or is waiting for a Sync. */
  get busy(): boolean {
    return this.#owed > 0 || this.#unsynced;
  }

  /**
   * Every request was answered, nothing follows the last Sync, and the last answer said "idle, no
   * transaction": the only state in which a goodbye can hand the connection to someone else.
   */
  get idle(): boolean {
    return this.#owed === 0 && !this.#unsynced && !this.#confused && this.#status === 0x49; /* 'I' */
  }
}
