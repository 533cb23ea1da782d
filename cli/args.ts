// Command-line parsing for the `rolegate` bin (docs/design.md §3). Pure: argv in, a command out.

export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

export interface LoginArgs {
  issuer: string;
  clientId: string;
  audience?: string;
  /** Client credentials instead of the device flow; also from ROLEGATE_CLIENT_SECRET. */
  clientSecret?: string;
  scope?: string;
  /** Extra PEM CA file trusted for the issuer's HTTPS. */
  ca?: string;
  /** Ignore and do not write the token cache. */
  noCache: boolean;
  /** Command and arguments to run with PGPASSWORD set (everything after --exec). */
  exec?: string[];
}

/** Filters shared by `audit search` and `audit sessions` (times as given; the verb parses them). */
export interface AuditFilters {
  person?: string;
  role?: string;
  since?: string;
  until?: string;
  session?: string;
}

export type AuditCommand =
  | { verb: 'verify'; files: string[]; publicKey?: string; partial: boolean; json: boolean }
  | ({ verb: 'search'; files: string[]; types: string[]; json: boolean } & AuditFilters)
  | ({ verb: 'sessions'; files: string[]; json: boolean } & AuditFilters)
  | { verb: 'timeline'; files: string[]; person: string; since?: string; until?: string; json: boolean }
  | { verb: 'export'; files: string[]; format: 'ocsf' | 'jsonl'; since?: string; follow: boolean };

export type Command =
  | { name: 'serve'; config: string }
  | ({ name: 'audit' } & AuditCommand)
  | { name: 'config-check'; config: string }
  | { name: 'provision-check'; config: string }
  | { name: 'demo' }
  | ({ name: 'login' } & LoginArgs)
  | { name: 'help' }
  | { name: 'version' };

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const USAGE = `usage: rolegate <command> [options]

commands:
  serve --config FILE          run the proxy and the admin/SCIM listener
  config check --config FILE   validate a config file and print every problem with its key path
  provision check --config FILE
                               with per-user provisioning: print every difference between the directory
                               and the database's roles and grants, change nothing (exit 1 if any)
  demo                         run the whole system locally with demo people and print psql commands
  login --issuer URL --client-id ID [--audience A] [--client-secret S] [--scope S] [--ca FILE]
        [--no-cache] [--exec CMD ARGS...]
                               get an access token (device flow, or client credentials with a secret),
                               cache it, print it, or run CMD with PGPASSWORD set
  audit verify [--public-key FILE] [--partial] [--json] FILE...
                               check the hash chain (and signed checkpoints) of audit files or folders
  audit search [--person P] [--role R] [--since T] [--until T] [--session ID] [--type T] [--json] FILE...
                               matching events, oldest first (T: 2026-11-23, 2026-11-23T09:00:00Z or 2h)
  audit sessions [--person P] [--role R] [--since T] [--until T] [--session ID] [--json] FILE...
                               one row per session
  audit timeline --person P [--since T] [--until T] [--json] FILE...
                               the person's story: directory changes, logins, statements, ends
  audit export --format ocsf|jsonl [--since T] [--follow] FILE...
                               events as OCSF 1.3 JSON lines or as they are; --follow keeps reading
  help                         show this text
  version                      print the version

exit codes: 0 ok, 1 failure, 2 usage or config error`;

/** Parses argv (without node and script); throws UsageError with a one-line reason. */
export function parseArgs(argv: readonly string[]): Command {
  const [first, ...rest] = argv;
  switch (first) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      return { name: 'help' };
    case 'version':
    case '--version':
      return { name: 'version' };
    case 'serve':
      return { name: 'serve', config: configFlag(rest, 'serve') };
    case 'demo':
      if (rest.length > 0) throw new UsageError(`demo: unexpected argument "${rest[0]}"`);
      return { name: 'demo' };
    case 'login':
      return { name: 'login', ...loginArgs(rest) };
    case 'provision': {
      const [sub, ...more] = rest;
      if (sub !== 'check') throw new UsageError(`unknown command "provision ${sub ?? ''}": did you mean "provision check"?`);
      return { name: 'provision-check', config: configFlag(more, 'provision check') };
    }
    case 'audit':
      return { name: 'audit', ...auditArgs(rest) };
    case 'config': {
      const [sub, ...more] = rest;
      if (sub !== 'check') throw new UsageError(`unknown command "config ${sub ?? ''}": did you mean "config check"?`);
      return { name: 'config-check', config: configFlag(more, 'config check') };
    }
    default:
      throw new UsageError(`unknown command "${first}"`);
  }
}

function configFlag(args: readonly string[], command: string): string {
  let config: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--config' || a === '-c') {
      const v = args[++i];
      if (v === undefined || v.startsWith('-')) throw new UsageError(`${command}: --config needs a file`);
      config = v;
    } else if (a.startsWith('--config=')) {
      config = a.slice('--config='.length);
    } else {
      throw new UsageError(`${command}: unexpected argument "${a}"`);
    }
  }
  if (config === undefined || config === '') throw new UsageError(`${command}: --config FILE is required`);
  return config;
}

function loginArgs(args: readonly string[]): LoginArgs {
  const out: Partial<LoginArgs> & { noCache: boolean } = { noCache: false };
  const valued = { '--issuer': 'issuer', '--client-id': 'clientId', '--audience': 'audience', '--client-secret': 'clientSecret', '--scope': 'scope', '--ca': 'ca' } as const;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--exec') {
      const cmd = args.slice(i + 1);
      if (cmd.length === 0) throw new UsageError('login: --exec needs a command');
      out.exec = cmd;
      break;
    }
    if (a === '--no-cache') {
      out.noCache = true;
      continue;
    }
    const eq = a.indexOf('=');
    const flag = (eq > 0 ? a.slice(0, eq) : a) as keyof typeof valued;
    if (!(flag in valued)) throw new UsageError(`login: unexpected argument "${a}"`);
    const v = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (v === undefined || v === '') throw new UsageError(`login: ${flag} needs a value`);
    out[valued[flag]] = v;
  }
  if (out.issuer === undefined) throw new UsageError('login: --issuer URL is required');
  if (out.clientId === undefined) throw new UsageError('login: --client-id ID is required');
  return out as LoginArgs;
}

const AUDIT_VERBS = ['verify', 'search', 'sessions', 'timeline', 'export'] as const;

/** `audit <verb> [flags] FILE...`: flags take a value (`--person P` or `--person=P`) unless boolean. */
function auditArgs(args: readonly string[]): AuditCommand {
  const [verb, ...rest] = args;
  if (!AUDIT_VERBS.includes(verb as (typeof AUDIT_VERBS)[number])) {
    throw new UsageError(`audit: expected one of ${AUDIT_VERBS.join(', ')}${verb === undefined ? '' : `, not "${verb}"`}`);
  }
  const valued: Record<string, readonly string[]> = {
    verify: ['--public-key'],
    search: ['--person', '--role', '--since', '--until', '--session', '--type'],
    sessions: ['--person', '--role', '--since', '--until', '--session'],
    timeline: ['--person', '--since', '--until'],
    export: ['--format', '--since'],
  };
  const flags: Record<string, readonly string[]> = { verify: ['--json', '--partial'], search: ['--json'], sessions: ['--json'], timeline: ['--json'], export: ['--follow'] };
  const values = new Map<string, string[]>();
  const set = new Set<string>();
  const files: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] as string;
    if (!a.startsWith('--')) {
      files.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const flag = eq > 0 ? a.slice(0, eq) : a;
    if ((flags[verb as string] ?? []).includes(flag) && eq < 0) {
      set.add(flag);
      continue;
    }
    if (!(valued[verb as string] ?? []).includes(flag)) throw new UsageError(`audit ${verb}: unexpected argument "${a}"`);
    const v = eq > 0 ? a.slice(eq + 1) : rest[++i];
    if (v === undefined || v === '') throw new UsageError(`audit ${verb}: ${flag} needs a value`);
    values.set(flag, [...(values.get(flag) ?? []), v]);
  }
  if (files.length === 0) throw new UsageError(`audit ${verb}: name at least one audit file or folder`);
  const one = (flag: string): string | undefined => {
    const v = values.get(flag);
    if (v !== undefined && v.length > 1) throw new UsageError(`audit ${verb}: ${flag} given twice`);
    return v?.[0];
  };
  const filters = (): AuditFilters => {
    const f: AuditFilters = {};
    for (const [flag, key] of [['--person', 'person'], ['--role', 'role'], ['--since', 'since'], ['--until', 'until'], ['--session', 'session']] as const) {
      const v = one(flag);
      if (v !== undefined) f[key] = v;
    }
    return f;
  };
  switch (verb) {
    case 'verify': {
      const key = one('--public-key');
      return { verb, files, partial: set.has('--partial'), json: set.has('--json'), ...(key !== undefined ? { publicKey: key } : {}) };
    }
    case 'search':
      return { verb, files, json: set.has('--json'), types: (values.get('--type') ?? []).flatMap((t) => t.split(',')).filter((t) => t !== ''), ...filters() };
    case 'sessions':
      return { verb, files, json: set.has('--json'), ...filters() };
    case 'timeline': {
      const f = filters();
      if (f.person === undefined) throw new UsageError('audit timeline: --person P is required');
      return { verb, files, json: set.has('--json'), person: f.person, ...(f.since !== undefined ? { since: f.since } : {}), ...(f.until !== undefined ? { until: f.until } : {}) };
    }
    default: {
      const format = one('--format');
      if (format !== 'ocsf' && format !== 'jsonl') throw new UsageError('audit export: --format ocsf or --format jsonl is required');
      const since = one('--since');
      return { verb: 'export', files, format, follow: set.has('--follow'), ...(since !== undefined ? { since } : {}) };
    }
  }
}
