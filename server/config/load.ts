// Reads, expands, validates and freezes the config file once at start. Every problem names its
// key path; relative file paths are resolved against the config file's folder.
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { expandEnv, type ExpandProblem } from './env-expand.js';
import { configSchema, type Config } from './schema.js';

export interface ConfigProblem {
  path: string;
  message: string;
}

export type ConfigResult = { ok: true; config: Readonly<Config> } | { ok: false; problems: ConfigProblem[] };

/** Loads `file`; never throws for a bad file, returns its problems instead. */
export async function loadConfigFile(file: string, env: Readonly<Record<string, string | undefined>>): Promise<ConfigResult> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, problems: [{ path: file, message: code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? 'error'})` }] };
  }
  return parseConfigText(text, env, dirname(resolve(file)));
}

/** Validates YAML text; `baseDir` anchors relative paths. */
export function parseConfigText(text: string, env: Readonly<Record<string, string | undefined>>, baseDir: string): ConfigResult {
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      problems: doc.errors.map((e) => ({ path: `line ${e.linePos?.[0]?.line ?? '?'}`, message: `YAML: ${e.message.split('\n')[0]}` })),
    };
  }
  const raw: unknown = doc.toJS();
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    return { ok: false, problems: [{ path: '(root)', message: 'expected a YAML mapping with proxy, upstream, oidc, roles, ...' }] };
  }
  const expandProblems: ExpandProblem[] = [];
  const expanded = expandEnv(raw, env, expandProblems);
  const parsed = configSchema.safeParse(expanded);
  // Report every problem at once: missing variables and schema errors alike.
  const problems = [...expandProblems, ...(parsed.success ? [] : parsed.error.issues.flatMap(formatIssue))];
  if (!parsed.success || problems.length > 0) return { ok: false, problems };
  return { ok: true, config: deepFreeze(resolvePaths(parsed.data, baseDir)) };
}

function formatIssue(issue: z.core.$ZodIssue): ConfigProblem[] {
  const path = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((k) => ({ path: path ? `${path}.${k}` : k, message: 'unknown key' }));
  }
  if (issue.code === 'invalid_type' && issue.message.includes('received undefined')) {
    return [{ path: path || '(root)', message: 'required' }];
  }
  return [{ path: path || '(root)', message: issue.message }];
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out;
}

function resolvePaths(c: Config, baseDir: string): Config {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
  const tls = (t: { cert: string; key: string } | undefined) => (t ? { cert: abs(t.cert), key: abs(t.key) } : undefined);
  const store = c.directory.store.startsWith('sqlite:') && c.directory.store !== 'sqlite::memory:'
    ? `sqlite:${abs(c.directory.store.slice('sqlite:'.length))}`
    : c.directory.store;
  return {
    ...c,
    proxy: { ...c.proxy, tls: tls(c.proxy.tls) },
    upstream: { ...c.upstream, tls: { ...c.upstream.tls, ca: c.upstream.tls.ca && abs(c.upstream.tls.ca) } },
    oidc: { ...c.oidc, ca: c.oidc.ca && abs(c.oidc.ca) },
    directory: { ...c.directory, store },
    roles: c.roles.map((r) => ({
      ...r,
      credentials: r.credentials !== undefined && 'cert' in r.credentials ? { cert: abs(r.credentials.cert), key: abs(r.credentials.key) } : r.credentials,
    })),
    admin: { ...c.admin, tls: tls(c.admin.tls) },
    audit: { ...c.audit, file: abs(c.audit.file), signingKey: c.audit.signingKey && abs(c.audit.signingKey) },
  };
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
