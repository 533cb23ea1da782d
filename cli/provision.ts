// `rolegate provision check --config FILE` (docs/design.md §7 step 4): prints every difference between
// the directory and the database's roles and grants without changing anything; exit 1 if any.
import { loadConfigFile } from '../server/config/load.js';
import { NotPerUserError, provisionCheck } from '../server/provision-check.js';
import { EXIT } from './args.js';
import { fail, oneLine } from './output.js';

export async function runProvisionCheck(configFile: string): Promise<void> {
  const result = await loadConfigFile(configFile, process.env);
  if (!result.ok) return fail(EXIT.usage, result.problems.map((p) => `${configFile}: ${p.path}: ${p.message}`));
  let report;
  try {
    report = await provisionCheck(result.config);
  } catch (err) {
    if (err instanceof NotPerUserError) return fail(EXIT.usage, [`${configFile}: ${err.message}`]);
    return fail(EXIT.failure, [`provision check: ${oneLine(err)}`]);
  }
  process.stdout.write(report.lines.map((l) => `${l}\n`).join(''));
  process.exitCode = report.problems === 0 ? EXIT.ok : EXIT.failure;
}
