// The demo's printout, pure: shell quoting proven by real bash on generated strings, libpq conninfo
// quoting by table, the rendered commands parsed back by bash, and the teardown order.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { conninfoValue, freshTokenPsqlCommand, psqlCommand, psqlConninfo, renderReady, scimActiveCurl, shellWord, singleQuote, type ReadyInfo } from '../../demo/printout.js';
import { Teardown } from '../../demo/teardown.js';

const run = promisify(execFile);

/** The words bash makes of `script` when each `"$@"` is printed NUL-separated by a stub command. */
async function bashWords(script: string, stub = 'psql'): Promise<string[]> {
  const { stdout } = await run('bash', ['-c', `${stub}() { printf '%s\\0' "PGPASSWORD=$PGPASSWORD" "$@"; }; ${script}`], { maxBuffer: 16 * 1024 * 1024 });
  return stdout.split('\0').slice(0, -1);
}

// Any Unicode scalar value but NUL (which no argv can carry), with shell metacharacters over-weighted.
const char = fc.oneof(
  fc.constantFrom("'", '"', '$', '`', '\\', '!', ' ', '\n', '\t', '*', '?', ';', '&', '|', '~', '#', '(', '{', '=', '%'),
  fc.integer({ min: 1, max: 0x10ffff }).filter((c) => c < 0xd800 || c > 0xdfff).map((c) => String.fromCodePoint(c)),
);
const anyString = fc.string({ unit: char, maxLength: 40 });

describe('shell quoting (checked by bash)', () => {
  it('singleQuote and shellWord give back every string as one word', async () => {
    const samples = fc.sample(anyString, 300);
    samples.push('', "'", "''", "a'b", 'plain', 'with space', '$(id)', '`id`', '!!');
    for (const quote of [singleQuote, shellWord]) {
      const words = await bashWords(`psql ${samples.map(quote).join(' ')}`);
      expect(words.slice(1)).toEqual(samples);
    }
  });

  it('shellWord leaves plain words bare and quotes the rest', () => {
    expect(shellWord('/tmp/rolegate-demo-AbC123/token')).toBe('/tmp/rolegate-demo-AbC123/token');
    expect(shellWord('alice@demo.rolegate.dev')).toBe('alice@demo.rolegate.dev');
    expect(shellWord('http://127.0.0.1:8080/scim/v2/Users/1f')).toBe('http://127.0.0.1:8080/scim/v2/Users/1f');
    expect(shellWord('a b')).toBe(`'a b'`);
    expect(shellWord('')).toBe(`''`);
  });
});

describe('libpq conninfo values', () => {
  it.each([
    ['localhost', 'localhost'],
    ['/tmp/rolegate-demo-x/ca.crt', '/tmp/rolegate-demo-x/ca.crt'],
    ['alice@demo.rolegate.dev', 'alice@demo.rolegate.dev'],
    ['/tmp/my dir/ca.crt', `'/tmp/my dir/ca.crt'`],
    [`it's`, `'it\\'s'`],
    ['back\\slash', `'back\\\\slash'`],
    ['', `''`],
    ['tab\there', `'tab\there'`],
  ])('%j -> %s', (value, quoted) => {
    expect(conninfoValue(value)).toBe(quoted);
  });
});

const TOKEN = 'eyJhbGciOiJFUzI1NiJ9.eyJlbWFpbCI6ImFsaWNlIn0.c2ln-_';

describe('printed commands (parsed back by bash)', () => {
  it('psqlCommand sets PGPASSWORD to the token and passes one conninfo argument, also for awkward CA paths', async () => {
    for (const ca of ['/tmp/rolegate-demo-x/ca.crt', '/tmp/my dir/ca.crt', `/tmp/it's "$HOME"/ca.crt`, '/tmp/a!b`c`\\d/ca.crt']) {
      const cmd = psqlCommand(TOKEN, 6432, 'alice@demo.rolegate.dev', ca);
      expect(await bashWords(cmd)).toEqual([`PGPASSWORD=${TOKEN}`, psqlConninfo(6432, 'alice@demo.rolegate.dev', ca)]);
      // Appending psql arguments, as the printout offers, adds words and changes nothing else.
      expect(await bashWords(`${cmd} -c "select current_user"`)).toEqual([`PGPASSWORD=${TOKEN}`, psqlConninfo(6432, 'alice@demo.rolegate.dev', ca), '-c', 'select current_user']);
    }
  });

  it('the common case prints the conninfo in double quotes and the token in single quotes', () => {
    expect(psqlCommand(TOKEN, 6432, 'demo_writer', '/tmp/rolegate-demo-x/ca.crt')).toBe(
      `PGPASSWORD='${TOKEN}' psql "host=localhost port=6432 dbname=demo user=demo_writer sslmode=verify-full sslrootcert=/tmp/rolegate-demo-x/ca.crt"`,
    );
  });

  it('freshTokenPsqlCommand runs the token script with the email', async () => {
    const cmd = freshTokenPsqlCommand('/tmp/d/token', 'alice@demo.rolegate.dev', 6432, 'alice@demo.rolegate.dev', '/tmp/d/ca.crt');
    const words = await bashWords(cmd.replace('/tmp/d/token', 'echo minted-for'));
    expect(words).toEqual(['PGPASSWORD=minted-for alice@demo.rolegate.dev', psqlConninfo(6432, 'alice@demo.rolegate.dev', '/tmp/d/ca.crt')]);
  });

  it('scimActiveCurl sends an RFC 7644 PatchOp that replaces active', async () => {
    const words = await bashWords(scimActiveCurl('http://127.0.0.1:9', 'scim-token-0123456789', 'u-1', false), 'curl');
    expect(words.slice(1)).toEqual([
      '-sS', '-o', '/dev/null', '-w', 'SCIM answered HTTP %{http_code}\\n', '-X', 'PATCH',
      '-H', 'Authorization: Bearer scim-token-0123456789', '-H', 'Content-Type: application/scim+json',
      '--data', '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","value":{"active":false}}]}',
      'http://127.0.0.1:9/scim/v2/Users/u-1',
    ]);
  });
});

const INFO: ReadyInfo = {
  elapsedMs: 4321,
  dir: '/tmp/rolegate-demo-x',
  caPath: '/tmp/rolegate-demo-x/ca.crt',
  postgres: { version: '15.18', source: 'system binaries', port: 5999 },
  issuer: 'https://127.0.0.1:7000',
  proxyPort: 6432,
  adminBase: 'http://127.0.0.1:8080',
  scimToken: 'scim-token-0123456789',
  adminToken: 'admin-token-0123456789',
  logPath: '/tmp/rolegate-demo-x/rolegate.log',
  auditDir: '/tmp/rolegate-demo-x/audit',
  tokenScript: '/tmp/rolegate-demo-x/token',
  tokenTtlSec: 3600,
  tokenExpiresAt: new Date(2030, 0, 1, 13, 14, 15),
  roles: ['demo_reader', 'demo_writer'],
  people: [
    { userName: 'alice@demo.rolegate.dev', group: 'analysts', grantedRoles: ['demo_reader'], loginUser: 'alice@demo.rolegate.dev', role: 'demo_reader', token: 'tok-a', scimId: 'id-a' },
    { userName: 'bob@demo.rolegate.dev', group: 'engineering', grantedRoles: ['demo_reader', 'demo_writer'], loginUser: 'demo_writer', role: 'demo_writer', token: 'tok-b', scimId: 'id-b' },
  ],
};

describe('renderReady', () => {
  const lines = renderReady(INFO);
  const text = lines.join('\n');

  it('starts with the ready line and ends with how to stop', () => {
    expect(lines[0]).toBe('rolegate demo: ready in 4.3 s');
    expect(lines.at(-1)).toBe('Ctrl+C stops everything and removes /tmp/rolegate-demo-x');
  });

  it.each([
    ['alice', `  ${psqlCommand('tok-a', 6432, 'alice@demo.rolegate.dev', INFO.caPath)}`],
    ['bob', `  ${psqlCommand('tok-b', 6432, 'demo_writer', INFO.caPath)}`],
    ['fresh token', `  ${freshTokenPsqlCommand(INFO.tokenScript, 'alice@demo.rolegate.dev', 6432, 'alice@demo.rolegate.dev', INFO.caPath)}`],
    ['deactivate', `  ${scimActiveCurl(INFO.adminBase, INFO.scimToken, 'id-a', false)}`],
    ['reactivate', `  ${scimActiveCurl(INFO.adminBase, INFO.scimToken, 'id-a', true)}`],
    ['sessions', `  curl -sS -H 'Authorization: Bearer admin-token-0123456789' http://127.0.0.1:8080/admin/sessions`],
  ])('prints the %s command on a line of its own', (_name, line) => {
    expect(lines.filter((l) => l === line)).toHaveLength(1);
  });

  it('says what each person can and cannot do, and how long tokens last', () => {
    expect(text).toContain('alice@demo.rolegate.dev: SCIM group "analysts" grants demo_reader; this command logs in as demo_reader\n  can:     SELECT on orders and customers\n  cannot:  INSERT and UPDATE are refused (ERROR: permission denied for table orders)');
    expect(text).toContain('  and:     user=demo_writer is refused at login ("alice@demo.rolegate.dev" may not use role "demo_writer")');
    expect(text).toContain('bob@demo.rolegate.dev: SCIM group "engineering" grants demo_reader, demo_writer; this command logs in as demo_writer\n  can:     SELECT, and also INSERT and UPDATE on orders and customers');
    expect(text).toContain('  note:    with user=bob@demo.rolegate.dev rolegate picks demo_reader, the least privileged role; user=demo_writer asks for that role');
    expect(text).toContain('Tokens last 1 hour (until 13:14:15)');
  });
});

describe('Teardown', () => {
  it('runs steps newest first, each once, past a failing one', async () => {
    const ran: string[] = [];
    const t = new Teardown();
    t.add('a', () => void ran.push('a'));
    t.add('b', () => {
      ran.push('b');
      throw new Error('b broke\nsecond line');
    });
    t.add('c', async () => void ran.push('c'));
    await t.run();
    await t.run();
    expect(ran).toEqual(['c', 'b', 'a']);
    expect(t.failures()).toEqual(['b: b broke']);
  });
});
