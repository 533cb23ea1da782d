// A directory change that commits while the upstream login is in flight (docs/design.md §2 step 7): the
// session is subject to revocation from the moment it is decided, so the client never runs a query.
// The database sits behind a TCP hop that holds back its first bytes, which makes the login slow.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgInfo } from '../helpers/postgres.js';
import { startDelayHop, type DelayHop } from '../helpers/delay-hop.js';
import { PATCH_URN, startStack, type Stack } from '../helpers/stack.js';
import { waitFor } from '../helpers/wait.js';
import { deniedEvents, pgLoginError } from './login-helpers.js';

let stack: Stack;
let hop: DelayHop;
const ids = new Map<string, string>();

beforeAll(async () => {
  hop = await startDelayHop({ host: '127.0.0.1', port: pgInfo().port }, 1_500);
  stack = await startStack({ config: { upstream: { port: hop.port, connectTimeout: '10s' } } });
  for (const [name, groups] of [['carol@corp.com', ['analysts']], ['dave@corp.com', ['engineering']], ['erin@corp.com', ['analysts']]] as const) {
    ids.set(name, await stack.provision(name, [...groups]));
  }
  await stack.provision('ops-seed@corp.com', ['ops']);
});
afterAll(async () => {
  await stack?.close();
  await hop?.close();
});

async function scimOk(path: string, method: string, body: unknown): Promise<void> {
  const res = await stack.scim(path, method, body);
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
}

/** Starts a login as `email` and, once the proxy is waiting on the slow database, applies `change`. */
async function loginWhile(email: string, change: () => Promise<void>, user = email) {
  const before = hop.accepted;
  const attempt = pgLoginError(stack.pgConfig(user, await stack.tokenFor(email)));
  await waitFor(() => hop.accepted > before, 5_000, 'the proxy never dialled the database');
  await change();
  return attempt;
}

describe('a directory change during the upstream login', () => {
  it('revocation lost during upstream login: a deactivation committed meanwhile refuses the login', async () => {
    const failure = await loginWhile('carol@corp.com', () =>
      scimOk(`/Users/${ids.get('carol@corp.com')}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active: false } }] }),
    );
    expect(failure).toMatchObject({ code: '28000', message: 'user "carol@corp.com" is deactivated' });
    expect(deniedEvents(stack).at(-1)).toMatchObject({ reason: 'deactivated', requestedUser: 'carol@corp.com' });
    expect(stack.auditEvents().some((e) => e['type'] === 'session.start' && (e['person'] as { userName: string }).userName === 'carol@corp.com')).toBe(false);
  });

  it('a group removal committed meanwhile refuses a login to the role that group granted', async () => {
    const failure = await loginWhile(
      'dave@corp.com',
      () => scimOk(`/Groups/${stack.groupId('engineering')}`, 'PATCH', {
        schemas: [PATCH_URN],
        Operations: [{ op: 'remove', path: `members[value eq "${ids.get('dave@corp.com')}"]` }],
      }),
      stack.roles.writer,
    );
    expect(failure).toMatchObject({ code: '28000', message: `"dave@corp.com" may not use role "${stack.roles.writer}"` });
    expect(deniedEvents(stack).at(-1)).toMatchObject({ reason: 'role_not_entitled' });
  });

  it('a change of the role the person would get ends the login as revoked', async () => {
    // erin's least-privileged role is the reader (analysts); moved to ops, it is the certificate role.
    const failure = await loginWhile('erin@corp.com', async () => {
      await scimOk(`/Groups/${stack.groupId('ops')}`, 'PATCH', { schemas: [PATCH_URN], Operations: [{ op: 'add', path: 'members', value: [{ value: ids.get('erin@corp.com') }] }] });
      await scimOk(`/Groups/${stack.groupId('analysts')}`, 'PATCH', {
        schemas: [PATCH_URN],
        Operations: [{ op: 'remove', path: `members[value eq "${ids.get('erin@corp.com')}"]` }],
      });
    });
    expect(failure).toMatchObject({ code: '57P01', message: 'access revoked' });
    expect(deniedEvents(stack).at(-1)).toMatchObject({ reason: 'revoked_during_login' });
  });

  it('a login with nothing changed meanwhile goes through the slow database', async () => {
    hop.delayMs = 300;
    const client = await stack.connect('ops-seed@corp.com');
    expect((await client.query('select current_user as u')).rows[0].u).toBe(stack.roles.certRole);
    await client.end();
  });
});
