// Every key path the config schema accepts (`proxy.listen`, `roles[].credentials.password`, ...),
// read from the zod schema itself so the README's config reference can be checked against it.
import type { z } from 'zod';
import { configSchema } from './schema.js';

type AnyZod = z.core.$ZodType;

/** Sorted, unique key paths of the config file, arrays written as `[]`. */
export function configKeyPaths(): string[] {
  const out = new Set<string>();
  walk(configSchema as unknown as AnyZod, '', out);
  return [...out].sort();
}

function walk(schema: AnyZod, path: string, out: Set<string>): void {
  const def = schema._zod.def as unknown as Record<string, unknown> & { type: string };
  switch (def.type) {
    case 'object': {
      const shape = def.shape as Record<string, AnyZod>;
      for (const [key, child] of Object.entries(shape)) {
        const p = path ? `${path}.${key}` : key;
        out.add(p);
        walk(child, p, out);
      }
      return;
    }
    case 'array':
      walk(def.element as AnyZod, `${path}[]`, out);
      return;
    case 'union':
      for (const option of def.options as AnyZod[]) walk(option, path, out);
      return;
    case 'optional':
    case 'default':
    case 'prefault':
    case 'nullable':
    case 'readonly':
      walk(def.innerType as AnyZod, path, out);
      return;
    case 'pipe':
      walk(def.in as AnyZod, path, out);
      return;
    default:
      return;
  }
}
