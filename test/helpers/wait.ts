// Polling for a condition that a real process or socket reaches in its own time.

/**
 * Resolves once `check` holds, polling every 25 ms; rejects after `timeoutMs` with `what` (a text,
 * or a function for text that is only worth building on failure, such as a process's output).
 */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 5_000,
  what: string | (() => string) = 'condition not met',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
