// Ending idle upstream connections a few at a time, so that ending many sessions at once does not
// flood the database host (docs/design.md §2 step 9).
//
// Each Terminate makes PostgreSQL tear a backend process down, which costs the database host real CPU
// (about 10 ms each on the 2-core test machine). A revocation, a reload or a pool flush can end hundreds
// of sessions in one turn of the event loop; sending every Terminate at once made hundreds of processes
// exit together, and for a second or two they took every core from everything else on the host (the
// database's other sessions, and rolegate itself when it shares the host, whose remaining FATALs and
// SCIM answers then waited). So at most MAX_IN_FLIGHT goodbyes run at once, in order; a goodbye is
// done when the server closes the connection (its backend is exiting) or after GRACE_MS. The clients
// of those sessions have had their answer already: only the idle backends wait, unreachable.
import type { Socket } from 'node:net';
import { TERMINATE } from '../wire/frontend-writer.js';

/** Goodbyes in flight at once: enough to keep up with a database that tears down in a millisecond. */
const MAX_IN_FLIGHT = 2;
/** A server that has not closed this long after Terminate is cut off (its backend ends on the reset). */
const GRACE_MS = 2_000;

let inFlight = 0;
// A queue read from `head`: a slot is cleared when its socket is taken, since a socket said goodbye
// to must not stay reachable from here (through its listeners it can hold its whole ended session).
const waiting: (Socket | undefined)[] = [];
let head = 0;

/**
 * Says Terminate to an idle upstream connection (nothing outstanding, no relay attached) and closes it,
 * now or after the goodbyes queued before it. Whatever the server still sends is dropped.
 */
export function sayGoodbye(socket: Socket): void {
  if (socket.destroyed) return;
  socket.on('error', ignore); // a reset while saying goodbye is of no interest
  socket.resume();
  waiting.push(socket);
  startWaiting();
}

/** Goodbyes queued and in flight (for tests and the metrics of a drain). */
export function goodbyesPending(): number {
  return waiting.length - head + inFlight;
}

function startWaiting(): void {
  while (inFlight < MAX_IN_FLIGHT && head < waiting.length) {
    const socket = waiting[head] as Socket;
    waiting[head++] = undefined;
    if (head === waiting.length) {
      waiting.length = 0;
      head = 0;
    } else if (head > 1024 && head * 2 > waiting.length) {
      waiting.splice(0, head);
      head = 0;
    }
    // Closed meanwhile (the server went first): nothing to say.
    if (socket.destroyed) continue;
    inFlight++;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      inFlight--;
      socket.destroy();
      startWaiting();
    };
    const timer = setTimeout(finish, GRACE_MS);
    timer.unref();
    socket.once('close', finish);
    socket.end(TERMINATE);
  }
}

function ignore(): void {}
