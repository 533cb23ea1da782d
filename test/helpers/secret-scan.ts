// The suite-wide secret scan (docs/design.md §6: tokens, passwords and credentials never appear in
// any log): every token, password and secret the tests used, searched for in every byte of every log
// and audit file the run wrote. Generated secrets are base64url or hex, so the files are cut into
// runs of those characters (and the runs into their dot-separated parts, for JWTs) and each run is
// looked up in a set: a secret between any two other characters is found, in one pass over the bytes.
// A secret with other characters (a password chosen by a test) is searched for as a plain substring.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Characters a generated secret is made of: it is a whole run of these in a file, or a dot-part of one. */
const SEPARATORS = /[^A-Za-z0-9_\-~.]+/;
const RUN_CHARS = /^[A-Za-z0-9_\-~.]+$/;

/** The strings to look for: each secret, and each part of a JWT (a signature alone is a leak too). */
export function secretSet(secrets: readonly string[]): Set<string> {
  const out = new Set<string>();
  for (const s of secrets) {
    if (s.length < 12) continue; // too short to be a generated secret; would match ordinary words
    out.add(s);
    const parts = s.split('.');
    // A JWT's signature and payload are secret material on their own; its header is not.
    if (parts.length === 3) for (const p of parts.slice(1)) if (p.length >= 16) out.add(p);
  }
  return out;
}

/** The secrets that occur in `text`. */
export function findSecrets(text: string, secrets: ReadonlySet<string>): string[] {
  const found: string[] = [];
  for (const run of text.split(SEPARATORS)) {
    if (run.length < 12) continue;
    if (secrets.has(run)) found.push(run);
    if (run.includes('.')) for (const part of run.split('.')) if (part.length >= 12 && secrets.has(part)) found.push(part);
  }
  for (const s of secrets) if (!RUN_CHARS.test(s) && text.includes(s)) found.push(s);
  return found;
}

/** Every regular file under `dir`. */
export function filesUnder(dir: string): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    const p = join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    if (st?.isDirectory()) out.push(...filesUnder(p));
    else if (st?.isFile()) out.push(p);
  }
  return out;
}

export interface ScanReport {
  readonly files: number;
  readonly bytes: number;
  readonly secrets: number;
  /** `file: secret-prefix…` for each leak. */
  readonly leaks: string[];
}

/** Scans `files` for `secrets`; a leak is reported by file and the first characters of the secret. */
export function scanFiles(files: readonly string[], secrets: readonly string[]): ScanReport {
  const set = secretSet(secrets);
  const leaks: string[] = [];
  let bytes = 0;
  for (const f of files) {
    const text = readFileSync(f, 'latin1');
    bytes += text.length;
    for (const s of findSecrets(text, set)) leaks.push(`${f}: ${s.slice(0, 6)}… (${s.length} characters)`);
  }
  return { files: files.length, bytes, secrets: set.size, leaks };
}
