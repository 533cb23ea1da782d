// The `rolegate` command (docs/design.md §3): argv in, one verb run, an exit code out (0 ok,
// 1 failure, 2 usage or config error). cli/ is the only code that reads argv and process.env, and
// nothing imports it but the package's bin.
import { readFileSync } from 'node:fs';
import { EXIT, USAGE, UsageError, parseArgs } from './args.js';
import { runAudit } from './audit.js';
import { runConfigCheck } from './config-check.js';
import { runDemoCommand } from './demo.js';
import { runProvisionCheck } from './provision.js';
import { runLoginCommand } from './login.js';
import { fail, oneLine } from './output.js';
import { runServe } from './serve.js';

/** Runs one CLI command and sets `process.exitCode` (serve keeps running until a signal). */
export async function main(argv: readonly string[]): Promise<void> {
  try {
    const cmd = parseArgs(argv);
    switch (cmd.name) {
      case 'help':
        process.stdout.write(USAGE + '\n');
        return;
      case 'version':
        process.stdout.write(packageVersion() + '\n');
        return;
      case 'audit': {
        const { name: _name, ...args } = cmd;
        return await runAudit(args);
      }
      case 'config-check':
        return await runConfigCheck(cmd.config);
      case 'provision-check':
        return await runProvisionCheck(cmd.config);
      case 'serve':
        return await runServe(cmd.config);
      case 'demo':
        return await runDemoCommand();
      case 'login': {
        const { name: _name, ...args } = cmd;
        return await runLoginCommand(args);
      }
    }
  } catch (err) {
    if (err instanceof UsageError) return fail(EXIT.usage, [err.message, 'run "rolegate help" for usage']);
    return fail(EXIT.failure, [oneLine(err)]);
  }
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}
