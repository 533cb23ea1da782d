// Command-line parsing for the `rolegate` bin (PRODUCT.md §3). Pure: argv in, a command out.

export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

export type Command =
  | { name: 'serve'; config: string }
  | { name: 'config-check'; config: string }
  | { name: 'help' }
  | { name: 'version' };

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const USAGE = `usage: rolegate <command> [options]

commands:
  serve --config FILE          run the proxy and the admin/SCIM listener
  config check --config FILE   validate a config file and print every problem with its key path
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
