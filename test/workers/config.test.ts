// `proxy.workers` (docs/design.md §8, Workers): a number or `auto`, and only on a postgres:// store,
// because each worker is an instance and a SQLite store serves one; `serve` refuses the rest at start.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../server/config/load.js';
import { runCli } from '../helpers/cli.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

function configText(store: string, workers: string): string {
  return `
proxy: { listen: "127.0.0.1:0", allowPlaintext: true${workers === '' ? '' : `, workers: ${workers}`} }
upstream: { host: 127.0.0.1, tls: { mode: disable } }
oidc: { issuer: "https://127.0.0.1:1/", audience: rolegate }
roles: [{ role: app_reader, groups: [analysts], databases: [app], credentials: { password: unused } }]
directory: { store: "${store}" }
admin: { listen: "127.0.0.1:0" }
log: { level: warn }
`;
}

const PG = 'postgres://rolegate@127.0.0.1:1/rolegate';

function parse(store: string, workers: string) {
  return parseConfigText(configText(store, workers), {}, '/tmp');
}

let dir: TempDir;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await dir?.cleanup();
});

describe('proxy.workers', () => {
  it('defaults to one process, and takes a number or auto on a postgres:// store', () => {
    const byDefault = parse('sqlite:x.db', '');
    expect(byDefault.ok && byDefault.config.proxy.workers).toBe(1);
    const two = parse(PG, '2');
    expect(two.ok && two.config.proxy.workers).toBe(2);
    const auto = parse(PG, 'auto');
    expect(auto.ok && auto.config.proxy.workers).toBe('auto');
    expect(parse('sqlite:x.db', '1').ok).toBe(true);
  });

  it('refuses 0, fractions and words other than auto', () => {
    for (const bad of ['0', '1.5', 'many', '257']) {
      const r = parse(PG, bad);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.problems.map((p) => p.path)).toContain('proxy.workers');
    }
  });

  it('refuses more than one worker (or auto) on a SQLite store, naming why', () => {
    for (const workers of ['2', 'auto']) {
      const r = parse('sqlite:x.db', workers);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.problems).toContainEqual(expect.objectContaining({ path: 'proxy.workers', message: expect.stringContaining('SQLite store serves one instance') }));
    }
  });

  it('rolegate serve with workers: 2 on a SQLite store stops at start with exit code 2 and the reason', async () => {
    const file = join(dir.path, 'sqlite-workers.yaml');
    await writeFile(file, configText(`sqlite:${join(dir.path, 'x.db')}`, '2'));
    const result = await runCli(['serve', '--config', file]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('proxy.workers: needs a postgres:// directory store');
  });
});
