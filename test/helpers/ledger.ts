// What the test helpers hand to the suite-wide secret scan (test/helpers/secret-scan.ts): the secrets
// they made or were given (tokens, passwords, bearer tokens), and copies of the logs and audit files
// rolegate wrote, kept past the cleanup of each test's temporary folder. The global teardown scans
// them after every test file has finished.
import { randomBytes } from 'node:crypto';
import { appendFileSync, cpSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The run's ledger folder (secrets/, logs/, audit/). */
    ledger: string;
  }
}

const mine = `${process.pid}-${randomBytes(4).toString('hex')}`;

function ledger(): string | undefined {
  try {
    return inject('ledger');
  } catch {
    return undefined; // outside a vitest worker (e.g. a bench reusing a helper)
  }
}

/** Records secrets the run used (one per line; newlines are not part of any secret). */
export function registerSecrets(...secrets: (string | undefined)[]): void {
  const dir = ledger();
  if (dir === undefined) return;
  const lines = secrets.filter((s): s is string => typeof s === 'string' && s.length > 0 && !s.includes('\n'));
  if (lines.length === 0) return;
  mkdirSync(join(dir, 'secrets'), { recursive: true });
  appendFileSync(join(dir, 'secrets', `${mine}.txt`), `${lines.join('\n')}\n`);
}

/** Keeps a copy of a log's text. */
export function keepLog(name: string, text: string): void {
  const dir = ledger();
  if (dir === undefined) return;
  mkdirSync(join(dir, 'logs'), { recursive: true });
  writeFileSync(join(dir, 'logs', `${mine}-${name}.log`), text);
}

/** Keeps a copy of the audit files (*.jsonl) under `folder`, before the test's temporary folder is removed. */
export function keepAuditFolder(name: string, folder: string): void {
  const dir = ledger();
  if (dir === undefined) return;
  try {
    cpSync(folder, join(dir, 'audit', `${mine}-${name}`), {
      recursive: true,
      filter: (src) => statSync(src).isDirectory() || src.endsWith('.jsonl'),
    });
  } catch {
    // nothing was written there
  }
}
