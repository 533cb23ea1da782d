// oidc-provider announces development settings and an "Unsupported runtime" on Node 20 through
// console.warn/console.info. Those notices are expected for a development issuer; the demo moves them
// out of its terminal output and into its log file, so that the printout stays readable.
const PREFIX = /^(?:\x1b\[[0-9;]*m)?oidc-provider (?:WARNING|NOTICE): /;
const ANSI = /\x1b\[[0-9;]*m/g;
// Notices before the log exists are kept until it does; there are a handful, bounded anyway.
const MAX_PENDING = 100;

export interface IssuerNoise {
  /** Sends held and future notices to `sink` (one line each, colours removed). */
  sendTo(sink: (line: string) => void): void;
  /** Puts console.warn and console.info back. */
  restore(): void;
}

/** Starts diverting oidc-provider's console notices; everything else passes through unchanged. */
export function divertIssuerNoise(): IssuerNoise {
  const { warn, info } = console;
  const pending: string[] = [];
  let sink: ((line: string) => void) | undefined;
  const divert = (original: (...args: unknown[]) => void) => (...args: unknown[]): void => {
    const first = args[0];
    if (typeof first !== 'string' || !PREFIX.test(first)) {
      original.apply(console, args);
      return;
    }
    const line = first.replace(ANSI, '');
    if (sink) sink(line);
    else if (pending.length < MAX_PENDING) pending.push(line);
  };
  console.warn = divert(warn);
  console.info = divert(info);
  return {
    sendTo(next) {
      sink = next;
      for (const line of pending.splice(0)) next(line);
    },
    restore() {
      console.warn = warn;
      console.info = info;
    },
  };
}
