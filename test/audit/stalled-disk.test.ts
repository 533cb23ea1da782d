// A stalled audit disk stops the audit, never the relay (docs/design.md §6, "Why the appender runs on
// the event loop"): the appender's file operations run in libuv's pool, so while one of them hangs,
// live sessions go on relaying, the admin listener answers, and a new login is refused with 58030
// once its session.start is not confirmed within proxy.loginTimeout. The hang is real: the next audit
// file is a FIFO with no reader, so opening it for writing blocks in the kernel until one comes.
// An appender that opened or wrote synchronously on the event loop would block the whole process
// there: this test then never finishes (checked with a synchronous open: killed after 100 s).
import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, readSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgLoginError } from '../e2e/login-helpers.js';
import { startStack, type Stack } from '../helpers/stack.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack({ config: { proxy: { loginTimeout: '2s' } } });
  await stack.provision('alice@corp.com', ['analysts']);
});
afterAll(async () => {
  await stack?.close();
});

/** `<stem>.<instance>.000007.jsonl` → the same with 000008. */
function nextFile(file: string): string {
  return file.replace(/\.(\d+)\.jsonl$/, (_, digits: string) => `.${String(Number(digits) + 1).padStart(digits.length, '0')}.jsonl`);
}

describe('the audit disk stalls (an open that never returns)', () => {
  it('keeps live sessions relaying and the admin listener answering, and refuses new logins with 58030', async () => {
    const live = await stack.connect('alice@corp.com', { app: 'through-the-stall' });
    await live.query('select 1 as before');
    await stack.server.audit.flushed();
    const current = stack.server.audit.head().file as string;
    const fifo = nextFile(current);
    execFileSync('mkfifo', ['-m', '0640', fifo]);
    // The file at the path is replaced: the appender's next batch notices it and opens the next
    // number, which is the FIFO, and that open blocks.
    writeFileSync(`${current}.other`, '');
    renameSync(`${current}.other`, current);
    try {
      await live.query('select 2 as into_the_stall');
      // Sessions keep relaying while their statements wait in memory for the disk.
      for (let i = 0; i < 50; i++) expect((await live.query('select $1::int as n', [i])).rows).toEqual([{ n: i }]);
      expect((await fetch(`${stack.adminUrl}/healthz`)).status).toBe(200);
      // A login waits for its session.start to be durable, which cannot happen: refused, not admitted.
      const token = await stack.tokenFor('alice@corp.com');
      expect(await pgLoginError(stack.pgConfig('alice@corp.com', token))).toEqual({ code: '58030', message: 'audit log unavailable' });
      expect((await live.query('select 3 as still')).rows).toEqual([{ still: 3 }]);
    } finally {
      // A reader lets the blocked open return, so that the pool thread is free again and the
      // stack can close; what the appender then writes into the FIFO is read and dropped.
      const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
      const sink = Buffer.alloc(1 << 16);
      for (let i = 0; i < 20; i++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        try {
          while (readSync(reader, sink) > 0);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        }
      }
      closeSync(reader);
      // The FIFO goes too: the appender moves on to a regular file, and the suite's copy of this
      // stack's audit files (for the secret scan) does not stop at a file it cannot copy.
      unlinkSync(fifo);
      await live.end();
    }
  });
});
