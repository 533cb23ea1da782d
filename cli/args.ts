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

export type Command =
  | { name: 'serve'; config: string }
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
