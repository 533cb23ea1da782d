// The README is the contract: its config reference must list exactly the keys the schema accepts, and
// its troubleshooting table every message rolegate sends to clients.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configKeyPaths } from '../../server/config/key-paths.js';
import { DIRECTORY_UNAVAILABLE, END_MESSAGE } from '../../proxy/session/reasons.js';
import { UpstreamError, UpstreamErrorCode } from '../../proxy/upstream/index.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

function section(title: string): string {
  const start = README.indexOf(`## ${title}`);
  expect(start, `README has a "## ${title}" section`).toBeGreaterThanOrEqual(0);
  const end = README.indexOf('\n## ', start + 3);
  return README.slice(start, end === -1 ? undefined : end);
}

describe('README', () => {
  it('config reference lists exactly the keys of the config schema', () => {
    const rows = section('Configuration reference')
      .split('\n')
      .map((l) => /^\| `([^`]+)` \|/.exec(l)?.[1])
      .filter((k): k is string => k !== undefined);
    expect([...rows].sort()).toEqual(configKeyPaths());
  });

  it('troubleshooting lists every message rolegate ends a session or an upstream login with', () => {
    const table = section('Troubleshooting');
    const messages = [
      ...Object.values(END_MESSAGE),
      ...Object.values(UpstreamErrorCode).filter((c) => c !== UpstreamErrorCode.aborted).map((c) => new UpstreamError(c, '').publicMessage),
      'SSL connection is required',
      'sorry, too many clients already',
      'login timed out',
      'token authentication failed for user',
      'is not provisioned',
      'is deactivated',
      'token does not belong to',
      'may not use role',
      'no role grants',
      'database role of',
      'is not ready',
      DIRECTORY_UNAVAILABLE,
    ];
    for (const m of messages) expect(table, `troubleshooting mentions "${m}"`).toContain(m);
  });

  it('shows the quick-start commands first', () => {
    const firstBlock = README.slice(README.indexOf('```sh'), README.indexOf('```', README.indexOf('```sh') + 5));
    expect(firstBlock).toContain('npm install && npx rolegate demo');
    expect(firstBlock).toContain('npm install && npm test');
  });
});
