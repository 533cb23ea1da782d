// The one logging call the HTTP apps make for failures they do not show the client, and the stderr
// fallback they use when no process logger is given (an app built on its own, as in unit tests).

/** The part of a pino logger an HTTP app uses for errors it does not show the client. */
export interface ErrorLogger {
  error(obj: Record<string, unknown>, msg: string): void;
}

/** Writes `msg: <stack>` to stderr. */
export const stderrLogger: ErrorLogger = {
  error(obj, msg) {
    const err = obj.err instanceof Error ? obj.err.stack ?? obj.err.message : String(obj.err);
    process.stderr.write(`${msg}: ${err}\n`);
  },
};
