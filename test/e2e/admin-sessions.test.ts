// The admin sessions API over real HTTP with a real proxied session.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, type Stack } from '../helpers/stack.js';

const ADMIN = 'admin-token-for-tests-0123456789';
let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ config: { admin: { tokens: [ADMIN] } } });
  await stack.provision('alice@corp.com', ['analysts']);
});
afterAll(async () => {
  await stack?.close();
});

const admin = (path: string, method = 'GET', token = ADMIN) =>
  fetch(`${stack.adminUrl}/admin${path}`, { method, headers: { authorization: `Bearer ${token}` } });

describe('admin sessions API', () => {
  it('is ready when the store, the issuer keys and the upstream answer', async () => {
    const res = await fetch(`${stack.adminUrl}/readyz`);
    expect(await res.text()).toBe('ok\n');
    expect(res.status).toBe(200);
  });

  it('refuses the SCIM token and missing tokens', async () => {
    expect((await admin('/sessions', 'GET', stack.scimToken)).status).toBe(401);
    expect((await fetch(`${stack.adminUrl}/admin/sessions`)).status).toBe(401);
    // ...and the admin token is not a SCIM token.
    const scim = await fetch(`${stack.adminUrl}/scim/v2/Users`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(scim.status).toBe(401);
  });

  it('lists a live session and ends it with 57P01 "terminated by administrator"', async () => {
    const client = new pg.Client(stack.pgConfig('alice@corp.com', await stack.tokenFor('alice@corp.com'), { application_name: 'admin-test' }));
    const errors: Error[] = [];
    client.on('error', (e) => errors.push(e));
    await client.connect();
    await client.query('select 1');
    const list = (await (await admin('/sessions')).json()) as { sessions: { id: string; person: string; role: string; database: string; statements: number; instance: string }[] };
    expect(list.sessions).toHaveLength(1);
    const s = list.sessions[0]!;
    expect(s).toMatchObject({ person: 'alice@corp.com', role: stack.roles.reader, database: stack.db.name, statements: 1 });
    expect(s.instance).toMatch(/^test-/);

    expect((await admin(`/sessions/${s.id}`, 'DELETE')).status).toBe(204);
    await expect(client.query('select 1')).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 100));
    expect(errors.some((e) => (e as { code?: string }).code === '57P01' && e.message === 'terminated by administrator')).toBe(true);
    expect((await admin(`/sessions/${s.id}`, 'DELETE')).status).toBe(404);
    await stack.server.audit.flushed();
    const ends = stack.auditEvents().filter((e) => e.type === 'session.end');
    expect(ends.at(-1)).toMatchObject({ session: s.id, reason: 'admin_kill', statements: 1 });
    await client.end().catch(() => undefined);
  });
});
