// A SQLite directory serves one instance (docs/design.md §8): the serving process claims the file, so a
// second one is refused at start with STORE_IN_USE instead of serving a directory whose writes it would
// never see; tools that only read are not refused; a crash (kill -9) leaves no stale claim.
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../../scim/store/open.js';
import { StoreError } from '../../scim/store/store-error.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { builtOpenStoreUrl, exitOf, onLines, startNode, writeScript } from './child.js';
import { rejectionOf, userAttrs } from './fixtures.js';

let dir: TempDir | undefined;
afterEach(async () => {
  await dir?.cleanup();
  dir = undefined;
});

describe('the SQLite serving claim', () => {
  it('a second claim on the same file fails with STORE_IN_USE; a reader is let in; after close the file can be claimed again', async () => {
    dir = await tempDir('rolegate-claim-');
    const url = `sqlite:${join(dir.path, 'directory.db')}`;
    const first = await openStore(url, { soleInstance: true });
    await first.createUser(userAttrs('a@corp.example'));
    const err = await rejectionOf(openStore(url, { soleInstance: true }));
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe('STORE_IN_USE');
    expect((err as StoreError).message).toMatch(/already served by another rolegate process.*use a postgres:\/\/ store/);
    const reader = await openStore(url);
    expect((await reader.listUsers({ offset: 0, limit: 10 })).total).toBe(1);
    await reader.close();
    await first.close();
    const again = await openStore(url, { soleInstance: true });
    await again.close();
  });

  it('another process holding the claim keeps this one out until it is killed -9', async () => {
    dir = await tempDir('rolegate-claim-');
    const url = `sqlite:${join(dir.path, 'directory.db')}`;
    const script = await writeScript(dir.path, 'hold.mjs', `import { openStore } from ${JSON.stringify(builtOpenStoreUrl())};
await openStore(process.argv[2], { soleInstance: true });
process.stdout.write('claimed\\n');
setInterval(() => {}, 1000);
`);
    const child = startNode(script, [url]);
    const exited = exitOf(child);
    await new Promise<void>((resolve) => onLines(child, (line) => line === 'claimed' && resolve()));
    expect(((await rejectionOf(openStore(url, { soleInstance: true }))) as StoreError).code).toBe('STORE_IN_USE');
    child.kill('SIGKILL');
    await exited;
    const mine = await openStore(url, { soleInstance: true });
    await mine.close();
  });
});
