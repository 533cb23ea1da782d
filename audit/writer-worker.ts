// The audit writer's thread (docs/design.md §6): runs the appender (audit/appender.ts) on the messages
// of audit/writer.ts and reports back what is on disk. Messages in: events, checkpoint, sync, close; out:
// durable, failed, recovered, replaced, closed.
import { parentPort, workerData } from 'node:worker_threads';
import { Appender, type AppenderState } from './appender.js';

/** What the owner sends. */
export type ToAppender =
  /** `count` events, a line each, `<ts>\t<event JSON>\n` as UTF-8 in the first `length` bytes (transferred). */
  | { readonly t: 'events'; readonly bytes: ArrayBuffer; readonly length: number; readonly count: number; readonly sync?: true }
  | { readonly t: 'checkpoint' }
  /** Someone waits for what was sent: sync as soon as it is written. */
  | { readonly t: 'sync' }
  | { readonly t: 'close'; readonly timeoutMs: number };

/** What the thread sends back. */
export type FromAppender =
  | { readonly t: 'durable'; readonly events: number; readonly seq: number; readonly hash: string; readonly ts: string; readonly file: string }
  | { readonly t: 'failed'; readonly code: string | undefined; readonly message: string; readonly file: string }
  | { readonly t: 'recovered'; readonly file: string }
  | { readonly t: 'replaced'; readonly file: string }
  | { readonly t: 'closed'; readonly unwritten: number };

const port = parentPort;
if (port !== null) {
  const send = (m: FromAppender): void => port.postMessage(m);
  const appender = new Appender(workerData as AppenderState, {
    durable: (r) => send({ t: 'durable', events: r.events, seq: r.head.seq, hash: r.head.hash, ts: r.ts, file: r.file }),
    failed: (err, file) => send({ t: 'failed', code: err.code, message: err.message, file }),
    recovered: (file) => send({ t: 'recovered', file }),
    replaced: (file) => send({ t: 'replaced', file }),
  });
  port.on('message', (m: ToAppender) => {
    if (m.t === 'events') {
      appender.enqueue(Buffer.from(m.bytes, 0, m.length), m.count);
      // A waiter came with this batch (Writer.flushed): one message, not two.
      if (m.sync === true) appender.requestSync();
    }
    else if (m.t === 'checkpoint') appender.requestCheckpoint();
    else if (m.t === 'sync') appender.requestSync();
    else void appender.close(m.timeoutMs).then(({ unwritten }) => send({ t: 'closed', unwritten }));
  });
}
