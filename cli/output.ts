// How the CLI reports failure: one `rolegate: ...` line per problem on stderr and an exit code;
// never a stack trace.

/** Writes each line to stderr and sets the exit code. */
export function fail(code: number, lines: readonly string[]): void {
  for (const l of lines) process.stderr.write(`rolegate: ${l}\n`);
  process.exitCode = code;
}

/** An error's first line. */
export function oneLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split('\n')[0] ?? 'error';
}
