// Admin answers for every worker of a `serve` with `proxy.workers` (docs/design.md §8, Workers):
// GET /admin/audit/head and GET /admin/directory carry every worker's part, and say 503 rather than
// pass some workers' parts off as all of them.
import express from 'express';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createAuditHeadRouter, type AuditHead, type AuditHeadPort } from '../../admin/audit-head.js';
import { createDirectoryRouter, type DirectoryView } from '../../admin/directory.js';
import type { PerWorker } from '../../admin/per-worker.js';
import { combineParts, isAuditHead, isDirectoryView } from '../../server/workers.js';

const TOKEN = 'per-worker-admin-token-0123456789';
const head = (instance: string, seq: number): AuditHead => ({ instance, seq, hash: `${'a'.repeat(63)}${seq % 10}`, ts: '2026-12-02T17:00:00.000Z', file: `/var/log/${instance}.000001.jsonl`, available: true });
const view = (instance: string, position: string): DirectoryView => ({ instance, store: 'postgres', current: true, position, persons: 3, groups: 1, memberships: 3, digest: 'd'.repeat(64) });

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

async function get(router: express.Router, path: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const app = express();
  app.use('/admin', router);
  const server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  close = () => new Promise((r) => server.close(() => r()));
  const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/admin${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

const auditHead = (port: AuditHeadPort) => get(createAuditHeadRouter({ tokens: [TOKEN], audit: port }), '/audit/head');
const directory = (own: DirectoryView, everyWorker?: () => Promise<PerWorker<DirectoryView>>) => {
  const router = express.Router();
  router.use('/directory', createDirectoryRouter({ tokens: [TOKEN], view: async () => own, ...(everyWorker ? { everyWorker } : {}) }));
  return get(router, '/directory');
};

describe('combineParts', () => {
  it('lists the parts in worker order, and a worker that is not running or answered something else as missing', () => {
    const all = combineParts({
      replies: [{ worker: 3, data: head('gw-w3', 9) }, { worker: 1, data: head('gw-w1', 4) }, { worker: 4, data: null }, { worker: 5, data: { instance: 'gw-w5', seq: '7' } }],
      missing: [{ worker: 2, why: 'not running' }],
    }, isAuditHead);
    expect(all.parts.map((h) => [h.worker, h.instance, h.seq])).toEqual([[1, 'gw-w1', 4], [3, 'gw-w3', 9]]);
    expect(all.missing).toEqual([{ worker: 2, why: 'not running' }, { worker: 4, why: 'no answer' }, { worker: 5, why: 'no answer' }]);
  });

  it('a reply carrying a `worker` of its own cannot claim another worker\'s place', () => {
    const all = combineParts({ replies: [{ worker: 2, data: { ...view('gw-w2', '7'), worker: 1 } }], missing: [] }, isDirectoryView);
    expect(all.parts.map((v) => v.worker)).toEqual([2]);
    expect(isDirectoryView({ ...view('x', '1'), store: 'mysql' })).toBe(false);
  });
});

describe('GET /admin/audit/head', () => {
  it('a single process answers with its own head, unchanged', async () => {
    const { status, body } = await auditHead({ head: () => head('solo', 5) });
    expect(status).toBe(200);
    expect(body).toEqual(head('solo', 5));
  });

  it('with workers: this worker\'s head and every worker\'s', async () => {
    const { status, body } = await auditHead({
      head: () => head('gw-w2', 8),
      everyWorker: async () => ({ parts: [{ worker: 1, ...head('gw-w1', 3) }, { worker: 2, ...head('gw-w2', 8) }], missing: [] }),
    });
    expect(status).toBe(200);
    expect(body).toEqual({ ...head('gw-w2', 8), workers: [{ worker: 1, ...head('gw-w1', 3) }, { worker: 2, ...head('gw-w2', 8) }] });
  });

  it('503 naming the worker whose head is missing, with the heads it has', async () => {
    const { status, body } = await auditHead({
      head: () => head('gw-w1', 3),
      everyWorker: async () => ({ parts: [{ worker: 1, ...head('gw-w1', 3) }], missing: [{ worker: 2, why: 'not running' }] }),
    });
    expect(status).toBe(503);
    expect(body).toMatchObject({ error: 'unavailable', detail: 'The audit chain head of worker 2 (not running) is not in this answer', instance: 'gw-w1', workers: [{ worker: 1, instance: 'gw-w1' }] });
  });

  it('503 when the supervisor cannot gather the heads at all', async () => {
    const { status, body } = await auditHead({ head: () => head('gw-w1', 3), everyWorker: () => Promise.reject(new Error('the supervisor did not answer')) });
    expect(status).toBe(503);
    expect(body).toMatchObject({ error: 'unavailable', instance: 'gw-w1', workers: [] });
  });
});

describe('GET /admin/directory', () => {
  it('a single process answers with its own view, unchanged', async () => {
    const { status, body } = await directory(view('solo', '12'));
    expect(status).toBe(200);
    expect(body).toEqual(view('solo', '12'));
  });

  it('with workers: every worker\'s view, so an operator sees whether the workers agree', async () => {
    const behind = { ...view('gw-w2', '11'), current: false, reason: 'catching up on the change log' };
    const { status, body } = await directory(view('gw-w1', '12'), async () => ({ parts: [{ worker: 1, ...view('gw-w1', '12') }, { worker: 2, ...behind }], missing: [] }));
    expect(status).toBe(200);
    expect(body).toEqual({ ...view('gw-w1', '12'), workers: [{ worker: 1, ...view('gw-w1', '12') }, { worker: 2, ...behind }] });
  });

  it('503 naming the worker whose view is missing', async () => {
    const { status, body } = await directory(view('gw-w1', '12'), async () => ({ parts: [{ worker: 1, ...view('gw-w1', '12') }], missing: [{ worker: 2, why: 'no answer' }] }));
    expect(status).toBe(503);
    expect(body).toMatchObject({ error: 'unavailable', detail: 'The directory view of worker 2 (no answer) is not in this answer' });
  });
});
