// Who a token names when userName and emails disagree (docs/design.md §2 step 5), through the whole stack:
// a userName match is final, active or not, and a session found by email is re-checked when a
// userName takes the address.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATCH_URN, startStack, type Stack } from '../helpers/stack.js';
import { lastDenied, pgLoginError, withPg } from './login-helpers.js';

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => {
  await stack?.close();
});

const who = 'select current_user as u';

describe('userName before emails', () => {
  it('a deactivated userName never falls through to another user’s email', async () => {
    const carol = await stack.provision('carol@corp.example', ['analysts']);
    // A second, more privileged account of hers that lists her address (a common admin-account shape).
    await stack.provision('carol-admin', ['ops'], { emails: ['carol@corp.example'] });
    const token = await stack.tokenFor('carol@corp.example');
    expect(await withPg(stack.pgConfig('carol@corp.example', token), async (c) => (await c.query(who)).rows)).toEqual([{ u: stack.roles.reader }]);

    const res = await stack.scim(`/Users/${carol}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', path: 'active', value: false }] });
    expect(res.status).toBe(200);
    for (const user of ['carol@corp.example', 'carol-admin', stack.roles.certRole]) {
      expect(await pgLoginError(stack.pgConfig(user, token)), user).toEqual({ code: '28000', message: 'user "carol@corp.example" is deactivated' });
      expect(lastDenied(stack)).toMatchObject({ reason: 'deactivated', sqlstate: '28000', requestedUser: user });
    }
  });

  it('a live session found by email ends when a user, even an inactive one, takes the address as userName', async () => {
    await stack.provision('dana-admin', ['analysts'], { emails: ['dana@corp.example'] });
    const client = await stack.connect('dana@corp.example');
    const fatal = new Promise<Error & { code?: string }>((resolve) => client.once('error', resolve));
    try {
      expect((await client.query(who)).rows).toEqual([{ u: stack.roles.reader }]);
      await stack.provision('dana@corp.example', [], { active: false });
      const err = await Promise.race([
        fatal,
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no FATAL within 2 s')), 2_000)),
      ]);
      expect(err).toMatchObject({ code: '57P01', message: 'access revoked' });
      const token = await stack.tokenFor('dana@corp.example');
      expect(await pgLoginError(stack.pgConfig('dana@corp.example', token))).toEqual({ code: '28000', message: 'user "dana@corp.example" is deactivated' });
      expect(lastDenied(stack)).toMatchObject({ reason: 'deactivated' });
    } finally {
      await client.end().catch(() => undefined);
    }
  });
});
