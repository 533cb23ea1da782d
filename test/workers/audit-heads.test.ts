// GET /admin/audit/head with `proxy.workers` (docs/design.md §8, Workers): the answer carries every
// worker's chain head, and says 503 rather than pass off some chains as all of them.
import express from 'express';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createAuditHeadRouter, type AuditHead, type AuditHeadPort } from '../../admin/audit-head.js';
import { combineAuditHeads } from '../../server/workers.js';

const TOKEN = 'audit-heads-admin-token-0123456789';
const head = (instance: string, seq: number): AuditHead => ({ instance, seq, hash: `${'a'.repeat(63)}${seq % 10}`, ts: '2026-12-02T17:00:00.000Z', file: `/var/log/${instance}.000001.jsonl`, available: true });

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

async function get(port: AuditHeadPort): Promise<{ status: number; body: Record<string, unknown> }> {
  const app = express();
  app.use('/admin', createAuditHeadRouter({ tokens: [TOKEN], audit: port }));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  close = () => new Promise((r) => server.close(() => r()));
  const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/admin/audit/head`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('combineAuditHeads', () => {
  it('lists the heads in worker order, and a worker that is not running or answered something else as missing', () => {
    const all = combineAuditHeads({
      replies: [{ worker: 3, data: head('gw-w3', 9) }, { worker: 1, data: head('gw-w1', 4) }, { worker: 4, data: null }, { worker: 5, data: { instance: 'gw-w5', seq: '7' } }],
      missing: [{ worker: 2, why: 'not running' }],
    });
    expect(all.heads.map((h) => [h.worker, h.instance, h.seq])).toEqual([[1, 'gw-w1', 4], [3, 'gw-w3', 9]]);
    expect(all.missing).toEqual([{ worker: 2, why: 'not running' }, { worker: 4, why: 'no answer' }, { worker: 5, why: 'no answer' }]);
  });
});

describe('GET /admin/audit/head', () => {
  it('a single process answers with its own head, unchanged', async () => {
    const { status, body } = await get({ head: () => head('solo', 5) });
    expect(status).toBe(200);
    expect(body).toEqual(head('solo', 5));
  });

  it('with workers: this worker\'s head and every worker\'s', async () => {
    const { status, body } = await get({
      head: () => head('gw-w2', 8),
      everyWorker: async () => ({ heads: [{ worker: 1, ...head('gw-w1', 3) }, { worker: 2, ...head('gw-w2', 8) }], missing: [] }),
    });
    expect(status).toBe(200);
    expect(body).toEqual({ ...head('gw-w2', 8), workers: [{ worker: 1, ...head('gw-w1', 3) }, { worker: 2, ...head('gw-w2', 8) }] });
  });

  it('503 naming the worker whose head is missing, with the heads it has', async () => {
    const { status, body } = await get({
      head: () => head('gw-w1', 3),
      everyWorker: async () => ({ heads: [{ worker: 1, ...head('gw-w1', 3) }], missing: [{ worker: 2, why: 'not running' }] }),
    });
    expect(status).toBe(503);
    expect(body).toMatchObject({ error: 'unavailable', detail: 'The audit chain head of worker 2 (not running) is not in this answer', instance: 'gw-w1', workers: [{ worker: 1, instance: 'gw-w1' }] });
  });

  it('503 when the supervisor cannot gather the heads at all', async () => {
    const { status, body } = await get({ head: () => head('gw-w1', 3), everyWorker: () => Promise.reject(new Error('the supervisor did not answer')) });
    expect(status).toBe(503);
    expect(body).toMatchObject({ error: 'unavailable', instance: 'gw-w1', workers: [] });
  });
});
