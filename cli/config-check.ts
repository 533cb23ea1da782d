// `rolegate config check --config FILE`: every problem with its key path (exit 2), or `FILE: ok`.
import { loadConfigFile } from '../server/config/load.js';
import { EXIT } from './args.js';
import { fail } from './output.js';

export async function runConfigCheck(configFile: string): Promise<void> {
  const result = await loadConfigFile(configFile, process.env);
  if (!result.ok) return fail(EXIT.usage, result.problems.map((p) => `${configFile}: ${p.path}: ${p.message}`));
  process.stdout.write(`${configFile}: ok\n`);
}
