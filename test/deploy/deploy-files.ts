// Readers for the compose deployment's files (docker-compose.yml, Dockerfile, .dockerignore, .env,
// make-certs.sh): just enough of each format for compose.test.ts to check that the files agree.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));

export const repoPath = (rel: string): string => join(REPO, rel);
export const readRepo = (rel: string): string => readFileSync(repoPath(rel), 'utf8');

export interface ComposeService {
  image?: string;
  build?: unknown;
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  volumes?: (string | Record<string, unknown>)[];
  ports?: (string | number | Record<string, unknown>)[];
  networks?: string[] | Record<string, unknown>;
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[]; disable?: boolean };
  user?: string;
  read_only?: boolean;
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
  networks?: Record<string, { internal?: boolean } | null>;
}

/** A `${...}` or `$NAME` reference in a compose value; `$$` is a literal dollar (compose spec). */
export interface VarRef {
  name: string;
  /** `${NAME:-x}`, `${NAME-x}`, `${NAME:+x}`, `${NAME+x}`: usable while NAME is unset. */
  hasDefault: boolean;
}

const COMPOSE_VAR = /\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])[^}]*)?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/** Every variable reference in the string values of a parsed compose document. */
export function composeVariables(doc: unknown): VarRef[] {
  const out: VarRef[] = [];
  const visit = (v: unknown): void => {
    if (typeof v === 'string') {
      for (const m of v.replaceAll('$$', '').matchAll(COMPOSE_VAR)) {
        const op = m[2];
        out.push({ name: (m[1] ?? m[3])!, hasDefault: op !== undefined && !op.endsWith('?') });
      }
    } else if (Array.isArray(v)) {
      v.forEach(visit);
    } else if (v !== null && typeof v === 'object') {
      Object.values(v).forEach(visit);
    }
  };
  visit(doc);
  return out;
}

/** `${NAME}` references the way rolegate expands them (docs/design.md §4). */
export function configVariables(text: string): string[] {
  return [...new Set([...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!))].sort();
}

/** A service's environment as a map, from either the mapping or the `KEY=VALUE` list form. */
export function serviceEnv(svc: ComposeService): Map<string, string> {
  const env = new Map<string, string>();
  if (Array.isArray(svc.environment)) {
    for (const item of svc.environment) {
      const eq = item.indexOf('=');
      env.set(eq < 0 ? item : item.slice(0, eq), eq < 0 ? '' : item.slice(eq + 1));
    }
  } else if (svc.environment) {
    for (const [k, v] of Object.entries(svc.environment)) env.set(k, v === null ? '' : String(v));
  }
  return env;
}

export interface Mount {
  kind: 'bind' | 'volume';
  /** Host path as written (bind) or volume name (volume); '' for an anonymous volume. */
  source: string;
  target: string;
  readOnly: boolean;
}

const isHostPath = (s: string): boolean => s.startsWith('.') || s.startsWith('/') || s.startsWith('~');

/** A service's volumes, short (`src:dst[:ro]`) or long syntax. */
export function serviceMounts(svc: ComposeService): Mount[] {
  return (svc.volumes ?? []).map((v) => {
    if (typeof v === 'string') {
      const parts = v.split(':');
      if (parts.length === 1) return { kind: 'volume', source: '', target: parts[0]!, readOnly: false };
      const [source, target, mode = ''] = parts as [string, string, string?];
      return { kind: isHostPath(source) ? 'bind' : 'volume', source, target, readOnly: mode.split(',').includes('ro') };
    }
    const source = String(v.source ?? '');
    return {
      kind: v.type === 'bind' ? 'bind' : 'volume',
      source,
      target: String(v.target),
      readOnly: v.read_only === true,
    };
  });
}

/** The mount whose target contains `containerPath` (the deepest one, as the kernel resolves it). */
export function mountFor(mounts: Mount[], containerPath: string): { mount: Mount; rest: string } | undefined {
  let best: { mount: Mount; rest: string } | undefined;
  for (const mount of mounts) {
    const t = mount.target.replace(/\/$/, '');
    if (containerPath === t || containerPath.startsWith(t + '/')) {
      if (best === undefined || t.length > best.mount.target.length) best = { mount, rest: containerPath.slice(t.length + 1) };
    }
  }
  return best;
}

export interface PortMapping {
  hostIp: string | undefined;
  hostPort: number | undefined;
  containerPort: number;
}

/** A service's published ports, short (`[ip:][host:]container[/proto]`) or long syntax. */
export function servicePorts(svc: ComposeService): PortMapping[] {
  return (svc.ports ?? []).map((p) => {
    if (typeof p === 'number') return { hostIp: undefined, hostPort: undefined, containerPort: p };
    if (typeof p === 'string') {
      const parts = p.replace(/\/(tcp|udp)$/, '').split(':');
      const containerPort = Number(parts.pop());
      const hostPort = parts.length > 0 ? Number(parts.pop()) : undefined;
      return { hostIp: parts.pop(), hostPort, containerPort };
    }
    return {
      hostIp: p.host_ip === undefined ? undefined : String(p.host_ip),
      hostPort: p.published === undefined ? undefined : Number(p.published),
      containerPort: Number(p.target),
    };
  });
}

export const serviceNetworks = (svc: ComposeService): string[] =>
  Array.isArray(svc.networks) ? svc.networks : Object.keys(svc.networks ?? { default: null });

/** `KEY=VALUE` lines of a dotenv file; comments and blank lines skipped, optional quotes removed. */
export function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m === null) throw new Error(`not a KEY=VALUE line: ${line}`);
    env[m[1]!] = m[2]!.replace(/^(['"])(.*)\1$/, '$2');
  }
  return env;
}

/** The `FILES=( ... )` list of deploy/certs/make-certs.sh: what it writes, relative to its output folder. */
export function makeCertsOutputs(script: string): string[] {
  const m = /^FILES=\(\n([\s\S]*?)\n\)/m.exec(script);
  if (m === null) throw new Error('make-certs.sh has no FILES=( ... ) list');
  return m[1]!.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
}

export interface Instruction {
  keyword: string;
  args: string;
  /** 0-based index of the FROM stage it belongs to (-1 before the first FROM). */
  stage: number;
}

/** Dockerfile instructions with continuations joined and comment lines dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    if (/^\s*#/.test(raw)) continue;
    const line = raw.replace(/\s+$/, '');
    if (line.endsWith('\\')) {
      pending += line.slice(0, -1) + ' ';
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (full === '') continue;
    const m = /^(\S+)\s*(.*)$/.exec(full)!;
    const keyword = m[1]!.toUpperCase();
    if (keyword === 'FROM') stage++;
    out.push({ keyword, args: m[2]!.trim(), stage });
  }
  return out;
}

/** The JSON array of an exec-form instruction (`ENTRYPOINT ["node", ...]`). */
export function execForm(args: string): string[] {
  const value: unknown = JSON.parse(args);
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new Error(`not an exec form: ${args}`);
  return value;
}

/**
 * Whether .dockerignore lets `path` into the build context: the last pattern matching the path or one
 * of its parent folders decides, `!` re-includes (Docker's documented rules, `**` for any depth).
 */
export function dockerContextIncludes(dockerignore: string, path: string): boolean {
  const patterns = dockerignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => ({ include: l.startsWith('!'), re: globToRegExp(l.replace(/^!/, '').replace(/^\/|\/$/g, '')) }));
  const segments = path.split('/');
  const candidates = segments.map((_, i) => segments.slice(0, i + 1).join('/'));
  let included = true;
  for (const p of patterns) if (candidates.some((c) => p.re.test(c))) included = p.include;
  return included;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += glob[i + 2] === '/' ? '(?:.*/)?' : '.*';
      i += glob[i + 2] === '/' ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
