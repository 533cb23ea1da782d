import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

let dir: TempDir;
beforeAll(async () => {
  dir = await tempDir();
});
afterAll(async () => {
  await dir.cleanup();
});

const VALID = `
proxy: { listen: "127.0.0.1:6432", allowPlaintext: true }
upstream: { host: 127.0.0.1 }
oidc: { issuer: "https://idp.example.com/", audience: rolegate }
roles: [{ role: app_reader, groups: [analysts], databases: [app], credentials: { password: "\${READER_PASSWORD}" } }]
scim: { tokens: ["\${SCIM_TOKEN}"] }
`;

describe('rolegate CLI', () => {
  it('prints usage for help and exits 0', async () => {
    const r = await runCli(['help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('serve --config FILE');
  });

  it('rejects an unknown command with exit 2 and one clear line, no stack trace', async () => {
    const r = await runCli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('rolegate: unknown command "frobnicate"');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('requires --config for serve', async () => {
    const r = await runCli(['serve']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--config FILE is required');
  });

  it('config check: ok for a valid file', async () => {
    const file = join(dir.path, 'ok.yaml');
    await writeFile(file, VALID);
    const r = await runCli(['config', 'check', '--config', file], { READER_PASSWORD: 'x', SCIM_TOKEN: 'a-long-enough-scim-token' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ok');
  });

  it('config check: every problem with its key path, exit 2', async () => {
    const file = join(dir.path, 'bad.yaml');
    await writeFile(file, VALID.replace('audience: rolegate', 'audience: rolegate, algoritms: [RS256]') + 'session: { maxDuration: forever }\n');
    const r = await runCli(['config', 'check', '--config', file], { SCIM_TOKEN: 'a-long-enough-scim-token' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('oidc.algoritms: unknown key');
    expect(r.stderr).toContain('session.maxDuration: "forever" is not a duration');
    expect(r.stderr).toContain('roles[0].credentials.password: environment variable READER_PASSWORD is not set');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('config check: a missing file is a config error', async () => {
    const r = await runCli(['config', 'check', '--config', join(dir.path, 'nope.yaml')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('file not found');
  });

  it('serve: a config error exits 2 before anything starts', async () => {
    const file = join(dir.path, 'bad-serve.yaml');
    await writeFile(file, 'proxy: {}\n');
    const r = await runCli(['serve', '--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('upstream: required');
  });
});
