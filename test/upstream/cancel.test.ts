// sendCancel against the run's real PostgreSQL: a pg_sleep in flight is cancelled (57014), over TLS and plaintext.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendCancel } from '../../proxy/upstream/cancel.js';
import { connectUpstream } from '../../proxy/upstream/connect.js';
import type { UpstreamConnection } from '../../proxy/upstream/connect.js';
import { UpstreamError } from '../../proxy/upstream/errors.js';
import type { UpstreamTls } from '../../proxy/upstream/transport.js';
import { freePort } from '../helpers/ports.js';
import { pgInfo, superuserQuery } from '../helpers/postgres.js';
import { baseOptions, closeConnection, createRole, scriptedServer, simpleQuery } from './support.js';

let scram: Awaited<ReturnType<typeof createRole>>;
beforeAll(async () => {
  scram = await createRole('scram');
});
afterAll(async () => {
  await scram?.drop();
});

/** Waits until the backend is running a statement, so the cancel has something to hit. */
async function waitUntilActive(pid: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { rows } = await superuserQuery<{ state: string }>('select state from pg_stat_activity where pid = $1', [pid]);
    if (rows[0]?.state === 'active') return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`backend ${pid} never became active`);
}

async function sleepingSession(tls: UpstreamTls): Promise<{ conn: UpstreamConnection; result: ReturnType<typeof simpleQuery> }> {
  const conn = await connectUpstream(baseOptions({ role: scram.role, credentials: { password: scram.password }, tls }));
  const result = simpleQuery(conn, 'select pg_sleep(30)');
  await waitUntilActive(conn.backendKey.processId);
  return { conn, result };
}

describe('sendCancel', () => {
  it.each<[string, () => UpstreamTls]>([
    ['over TLS (verify-full)', () => ({ mode: 'verify-full', ca: readFileSync(pgInfo().caCertPath) })],
    ['in plaintext (disable)', () => ({ mode: 'disable' })],
  ])('cancels a query in flight %s', async (_name, tls) => {
    const { conn, result } = await sleepingSession(tls());
    const started = Date.now();
    await sendCancel({ host: pgInfo().host, port: pgInfo().port, tls: tls(), backendKey: conn.backendKey });
    const reply = await result;
    expect(reply.error?.code).toBe('57014');
    expect(Date.now() - started).toBeLessThan(10_000);
    // The session survives a cancel.
    expect((await simpleQuery(conn, 'select 1')).rows).toEqual([['1']]);
    await closeConnection(conn);
  });

  it('delivers a request with a wrong key, which the server ignores', async () => {
    const conn = await connectUpstream(baseOptions({ role: scram.role, credentials: { password: scram.password } }));
    const result = simpleQuery(conn, 'select pg_sleep(0.5)');
    await waitUntilActive(conn.backendKey.processId);
    const wrong = Buffer.from(conn.backendKey.secretKey.map((b) => b ^ 0xff));
    await sendCancel({ host: pgInfo().host, port: pgInfo().port, tls: { mode: 'require' }, backendKey: { processId: conn.backendKey.processId, secretKey: wrong } });
    const reply = await result;
    expect(reply.error).toBeUndefined();
    await closeConnection(conn);
  });

  it('reports a closed port as UPSTREAM_UNREACHABLE', async () => {
    const port = await freePort();
    const err = await sendCancel({ host: '127.0.0.1', port, tls: { mode: 'disable' }, backendKey: { processId: 1, secretKey: Buffer.alloc(4) } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).code).toBe('UPSTREAM_UNREACHABLE');
  });

  it("does not fall back to plaintext when the server answers 'N' and the mode requires TLS", async () => {
    const received: Buffer[] = [];
    const server = await scriptedServer((socket) => {
      socket.on('data', (chunk: Buffer) => {
        received.push(chunk);
        socket.write('N');
      });
    });
    try {
      const err = await sendCancel({ host: '127.0.0.1', port: server.port, tls: { mode: 'require' }, backendKey: { processId: 5, secretKey: Buffer.alloc(4) } }).catch((e: unknown) => e);
      expect((err as UpstreamError).code).toBe('UPSTREAM_TLS');
      // Only the SSLRequest went out; the key never crossed in plaintext.
      expect(Buffer.concat(received).length).toBe(8);
    } finally {
      await server.close();
    }
  });

  it('times out against a server that never closes', async () => {
    // A server that never reads never sees our FIN, so it never closes.
    const server = await scriptedServer(() => undefined);
    try {
      const err = await sendCancel({ host: '127.0.0.1', port: server.port, tls: { mode: 'disable' }, backendKey: { processId: 5, secretKey: Buffer.alloc(4) }, timeoutMs: 200 }).catch((e: unknown) => e);
      expect((err as UpstreamError).code).toBe('UPSTREAM_TIMEOUT');
    } finally {
      await server.close();
    }
  });
});
