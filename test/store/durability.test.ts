// A 2xx means committed: kill -9 a process in the middle of a burst of writes to a SQLite store and
// every write it acknowledged is there when the file is opened again.
import Database from 'better-sqlite3';
import { join, relative } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { openStore } from '../../scim/store/open.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { builtOpenStoreUrl, exitOf, onLines, startNode, writeScript } from './child.js';

let dir: TempDir | undefined;
afterEach(async () => {
  await dir?.cleanup();
  dir = undefined;
});

it('kill -9 mid-burst loses no acknowledged user or membership', async () => {
  dir = await tempDir('rolegate-durable-');
  const file = join(dir.path, 'data', 'directory.db');
  const script = await writeScript(
    dir.path,
    'burst.mjs',
    `import { openStore } from ${JSON.stringify(builtOpenStoreUrl())};
const store = await openStore(process.argv[2]);
const g = await store.createGroup({ displayName: 'burst' }, []);
process.stdout.write('group ' + g.id + '\\n');
for (let i = 0; ; i++) {
  const u = await store.createUser({ userName: 'burst-' + i, active: true, emails: [{ value: 'b' + i + '@x.example' }] });
  process.stdout.write('user ' + u.id + '\\n');
  await store.updateGroup(g.id, (cur) => ({ attributes: cur.attributes, members: [...cur.members, { value: u.id }] }));
  process.stdout.write('member ' + u.id + '\\n');
}
`,
  );
  const child = startNode(script, [`sqlite:${file}`]);
  const exited = exitOf(child);
  let groupId = '';
  const users: string[] = [];
  const members: string[] = [];
  onLines(child, (line) => {
    const [kind, id = ''] = line.split(' ');
    if (kind === 'group') groupId = id;
    if (kind === 'user') users.push(id);
    if (kind === 'member') members.push(id);
    // Killed right after an acknowledgement, while the next write is under way.
    if (users.length === 120 && kind === 'user') child.kill('SIGKILL');
  });
  const exit = await exited;
  expect(exit.signal, exit.stderr).toBe('SIGKILL');
  expect(users.length).toBeGreaterThanOrEqual(120);

  const check = new Database(file, { readonly: true });
  try {
    expect(check.pragma('integrity_check', { simple: true })).toBe('ok');
  } finally {
    check.close();
  }
  const store = await openStore(`sqlite:${file}`);
  try {
    for (const id of users) expect(await store.getUser(id), id).toBeDefined();
    const group = await store.getGroup(groupId, { members: true });
    const stored = new Set(group?.members.map((m) => m.value));
    for (const id of members) expect(stored.has(id), id).toBe(true);
    // Nothing beyond what was started: at most one unacknowledged user and membership.
    expect((await store.listUsers({ offset: 0, limit: 1 })).total - users.length).toBeLessThanOrEqual(1);
  } finally {
    await store.close();
  }
}, 120_000);

it('a relative sqlite:PATH is resolved against the working directory and its folder is created', async () => {
  dir = await tempDir('rolegate-relative-');
  const rel = relative(process.cwd(), join(dir.path, 'a', 'b', 'rel.db'));
  expect(rel.startsWith('/')).toBe(false);
  const store = await openStore(`sqlite:${rel}`);
  const u = await store.createUser({ userName: 'r', active: true });
  await store.close();
  const again = await openStore(`sqlite:${join(dir.path, 'a', 'b', 'rel.db')}`);
  expect(await again.getUser(u.id)).toEqual(u);
  await again.close();
});
