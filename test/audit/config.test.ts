// The audit config keys do what they say (docs/design.md §4, §6): `audit.file` places the instance's
// series, `audit.statements: false` writes no statement events, `audit.parameters` is off by default,
// `audit.rotateBytes`/`checkpointEvery` are validated, and a signing key that is not Ed25519 stops
// `rolegate serve` with one clear line.
import { generateKeyPairSync } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfigText } from '../../server/config/load.js';
import { runCli } from '../helpers/cli.js';
import { readAuditDir, startStack, type Stack } from '../helpers/stack.js';
import { tempDir } from '../helpers/tmp.js';

const MINIMAL = {
  proxy: { listen: '127.0.0.1:0', allowPlaintext: true },
  upstream: { host: '127.0.0.1', tls: { mode: 'disable' } },
  oidc: { issuer: 'https://127.0.0.1:1/', audience: 'rolegate' },
  roles: [{ role: 'r', groups: ['g'], databases: ['d'], credentials: { password: 'p' } }],
};
const parse = (audit: unknown) => parseConfigText(JSON.stringify({ ...MINIMAL, audit }), {}, '/etc/rolegate');

describe('audit config keys', () => {
  it('sizes, durations, paths and their bounds', () => {
    const ok = parse({ rotateBytes: '64KiB', signingKey: 'keys/audit.pem', checkpointEvery: '2s', file: 'trail/a.jsonl' });
    expect(ok.ok && ok.config.audit).toMatchObject({ rotateBytes: 65_536, signingKey: '/etc/rolegate/keys/audit.pem', checkpointEvery: 2_000, file: '/etc/rolegate/trail/a.jsonl' });
    const defaults = parse({});
    expect(defaults.ok && defaults.config.audit).toMatchObject({ rotateBytes: 100_000_000, checkpointEvery: 10_000, statements: true, parameters: false });
    expect(parse({ rotateBytes: 1000 })).toMatchObject({ ok: false, problems: [{ path: 'audit.rotateBytes', message: 'must be at least 4096 bytes' }] });
    expect(parse({ rotateBytes: 'lots' })).toMatchObject({ ok: false, problems: [{ path: 'audit.rotateBytes', message: expect.stringMatching(/not a size/) }] });
    expect(parse({ checkpointEvery: '50ms' })).toMatchObject({ ok: false, problems: [{ path: 'audit.checkpointEvery', message: 'must be at least 100ms' }] });
  });

  it('a signing key that is not Ed25519 stops `rolegate serve` with one line', async () => {
    const dir = await tempDir();
    try {
      const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      await writeFile(join(dir.path, 'ec.pem'), ec.privateKey.export({ type: 'pkcs8', format: 'pem' }));
      const file = join(dir.path, 'rolegate.yaml');
      await writeFile(file, JSON.stringify({ ...MINIMAL, admin: { listen: '127.0.0.1:0' }, directory: { store: `sqlite:${join(dir.path, 'd.db')}` }, audit: { signingKey: 'ec.pem' } }));
      const r = await runCli(['serve', '--config', file]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe('rolegate: cannot start: audit.signingKey must be an Ed25519 key (it is ec)');
    } finally {
      await dir.cleanup();
    }
  });
});

describe('audit.file and audit.statements: false, with audit.parameters left off', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ config: { audit: { file: 'trail/gateway.jsonl', statements: false } } });
    await stack.provision('alice@corp.com', ['analysts']);
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('writes the series named after audit.file and the instance, without statement events', async () => {
    const c = await stack.connect('alice@corp.com');
    await c.query('select $1::int as x', [1]);
    await c.end();
    await stack.server.audit.flushed();
    const dir = join(stack.dir, 'trail');
    expect(readdirSync(dir).filter((n) => n.endsWith('.jsonl'))).toEqual([expect.stringMatching(/^gateway\.test-[0-9a-f]+\.000001\.jsonl$/)]);
    const types = readAuditDir(dir).map((e) => e.type);
    expect(types).toContain('session.start');
    expect(types).toContain('session.end');
    expect(types).not.toContain('statement');
  });
});

describe('audit.parameters off (the default)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
    await stack.provision('alice@corp.com', ['analysts']);
  });
  afterAll(async () => {
    await stack?.close();
  });

  it('records the parameter count, never the values', async () => {
    const c = await stack.connect('alice@corp.com');
    await c.query('select $1::text as x, $2::int as y', ['visible-only-with-parameters', 2]);
    await c.end();
    await stack.server.audit.flushed();
    const s = stack.auditEvents().filter((e) => e.type === 'statement');
    expect(s).toEqual([expect.objectContaining({ text: 'select $1::text as x, $2::int as y', params: { count: 2 } })]);
    expect(JSON.stringify(stack.auditEvents())).not.toContain('visible-only-with-parameters');
  });
});
