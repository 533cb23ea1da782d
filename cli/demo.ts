// `rolegate demo`: the whole system on this machine until Ctrl+C (demo/run.ts does the work).

export async function runDemoCommand(): Promise<void> {
  // Loaded on demand: the demo pulls in the development issuer and PostgreSQL helpers.
  const { runDemo } = await import('../demo/run.js');
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  process.once('SIGTERM', () => abort.abort());
  process.exitCode = await runDemo({ out: (line) => process.stdout.write(line + '\n'), env: process.env, signal: abort.signal });
}
