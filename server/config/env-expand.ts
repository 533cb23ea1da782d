// `${NAME}` in any config value is replaced by the environment variable NAME (docs/design.md §4).
// A missing variable is a config error that names the key path, never a silent empty string.

export interface ExpandProblem {
  path: string;
  message: string;
}

const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** Returns a copy of `value` with every `${NAME}` expanded; problems name the key path. */
export function expandEnv(value: unknown, env: Readonly<Record<string, string | undefined>>, problems: ExpandProblem[], path = ''): unknown {
  if (typeof value === 'string') {
    return value.replace(REFERENCE, (_all, name: string) => {
      const v = env[name];
      if (v === undefined) {
        problems.push({ path: path || '(root)', message: `environment variable ${name} is not set` });
        return '';
      }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => expandEnv(v, env, problems, `${path}[${i}]`));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (k !== '__proto__') out[k] = expandEnv(v, env, problems, path ? `${path}.${k}` : k);
    return out;
  }
  return value;
}
