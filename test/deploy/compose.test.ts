// The docker-compose deployment, checked without a Docker engine: every file parses and agrees with the
// others and with deploy/rolegate.yaml (validated by rolegate's own loader); make-certs.sh runs for real
// and its certificates verify; init.sh runs against a real PostgreSQL whose privileges are then probed.
import { execFile } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { startLocalPostgres, type LocalPostgres } from '../../demo/local-postgres.js';
import { loadConfigFile, parseConfigText } from '../../server/config/load.js';
import type { Config } from '../../server/config/schema.js';
import { freePort } from '../helpers/ports.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import {
  composeVariables,
  configVariables,
  dockerContextIncludes,
  execForm,
  makeCertsOutputs,
  mountFor,
  parseDockerfile,
  parseEnvFile,
  readRepo,
  repoPath,
  serviceEnv,
  serviceMounts,
  serviceNetworks,
  servicePorts,
  type ComposeFile,
  type ComposeService,
  type Instruction,
} from './deploy-files.js';

const run = promisify(execFile);

// ---- the files under test, read once ----------------------------------------------------------------
const compose = parseYaml(readRepo('docker-compose.yml')) as ComposeFile;
const envExample = parseEnvFile(readRepo('deploy/.env.example'));
const configText = readRepo('deploy/rolegate.yaml');
const realm = JSON.parse(readRepo('deploy/keycloak/realm-rolegate.json')) as Realm;
const dockerfile = parseDockerfile(readRepo('Dockerfile'));
const dockerignore = readRepo('.dockerignore');
const walkthrough = readRepo('deploy/README.md');
const certFiles = makeCertsOutputs(readRepo('deploy/certs/make-certs.sh'));
const CERTS_DIR = 'deploy/certs';

const CONFIG_MOUNT_SOURCE = './deploy/rolegate.yaml';
const parsed = parseConfigText(configText, envExample, '/etc/rolegate');

/** The validated config; a test that needs it fails with every problem listed if it is invalid. */
function config(): Readonly<Config> {
  if (!parsed.ok) throw new Error(`deploy/rolegate.yaml is invalid:\n${parsed.problems.map((p) => `  ${p.path}: ${p.message}`).join('\n')}`);
  return parsed.config;
}

function service(name: string): ComposeService {
  const svc = compose.services[name];
  if (svc === undefined) throw new Error(`docker-compose.yml has no service "${name}"`);
  return svc;
}

/** The service whose published name (service key) is `host`, or that lists it as a network alias. */
function serviceNamed(host: string): string | undefined {
  if (compose.services[host] !== undefined) return host;
  for (const [name, svc] of Object.entries(compose.services)) {
    const nets = Array.isArray(svc.networks) ? {} : (svc.networks ?? {});
    for (const n of Object.values(nets)) {
      if (n !== null && typeof n === 'object' && Array.isArray((n as { aliases?: unknown }).aliases) && (n as { aliases: string[] }).aliases.includes(host)) return name;
    }
  }
  return undefined;
}

const sharesNetwork = (a: string, b: string): boolean => serviceNetworks(service(a)).some((n) => serviceNetworks(service(b)).includes(n));

/** True when `rel` (repository-relative) is made by make-certs.sh: one of its files or a folder of them. */
function madeByMakeCerts(rel: string): boolean {
  if (!rel.startsWith(CERTS_DIR + '/')) return false;
  const inside = rel.slice(CERTS_DIR.length + 1).replace(/\/$/, '');
  return certFiles.some((f) => f === inside || f.startsWith(inside + '/'));
}

/** Repository-relative path of a bind source, e.g. `./deploy/x` -> `deploy/x`. */
const repoRel = (source: string): string => posix.normalize(source).replace(/^\.\//, '').replace(/\/$/, '');

/** The host file (repository-relative) behind a container path of a service, if a bind mount provides it. */
function hostFileFor(svc: ComposeService, containerPath: string): string | undefined {
  const hit = mountFor(serviceMounts(svc), containerPath);
  if (hit === undefined || hit.mount.kind !== 'bind') return undefined;
  return hit.rest === '' ? repoRel(hit.mount.source) : posix.join(repoRel(hit.mount.source), hit.rest);
}

/** Every file path the rolegate config reads, with its key path. */
function configFiles(c: Readonly<Config>): [string, string][] {
  const files: [string, string | undefined][] = [
    ['proxy.tls.cert', c.proxy.tls?.cert],
    ['proxy.tls.key', c.proxy.tls?.key],
    ['upstream.tls.ca', c.upstream.tls.ca],
    ['oidc.ca', c.oidc.ca],
    ['admin.tls.cert', c.admin.tls?.cert],
    ['admin.tls.key', c.admin.tls?.key],
    ...c.roles.flatMap((r, i): [string, string | undefined][] =>
      r.credentials !== undefined && 'cert' in r.credentials ? [[`roles[${i}].credentials.cert`, r.credentials.cert], [`roles[${i}].credentials.key`, r.credentials.key]] : []),
  ];
  return files.filter((f): f is [string, string] => f[1] !== undefined);
}

// ---- shared fixtures: make-certs.sh output ---------------------------------------------------------
let certsDir: TempDir;
let certsRun: { stdout: string; stderr: string };
const certPath = (rel: string): string => join(certsDir.path, rel);

beforeAll(async () => {
  certsDir = await tempDir('rolegate-deploy-certs-');
  certsRun = await run('bash', [repoPath('deploy/certs/make-certs.sh'), certsDir.path], { timeout: 60_000 });
});

afterAll(async () => {
  await certsDir?.cleanup();
});

// ---- deploy/rolegate.yaml ---------------------------------------------------------------------------
describe('deploy/rolegate.yaml', () => {
  it("is valid for rolegate's own loader with the variables of deploy/.env.example", async () => {
    expect(parsed.ok ? [] : parsed.problems).toEqual([]);
    const fromFile = await loadConfigFile(repoPath('deploy/rolegate.yaml'), envExample);
    expect(fromFile.ok ? [] : fromFile.problems).toEqual([]);
    // Every path is absolute, so the loader's base folder changes nothing.
    expect(fromFile.ok && fromFile.config).toEqual(config());
  });

  it('names every variable it needs: leaving any one out is a config error that says which', () => {
    const vars = configVariables(configText);
    expect(vars.length).toBeGreaterThan(0);
    for (const name of vars) {
      const { [name]: _dropped, ...rest } = envExample;
      const result = parseConfigText(configText, rest, '/etc/rolegate');
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.problems.map((p) => p.message)).toContain(`environment variable ${name} is not set`);
    }
  });

  it('takes every secret from the environment', () => {
    const raw = parseYaml(configText) as {
      roles: { credentials: { password?: string } }[];
      scim: { tokens: string[] };
      admin: { tokens: string[] };
    };
    const secrets = [...raw.roles.map((r) => r.credentials.password).filter((p) => p !== undefined), ...raw.scim.tokens, ...raw.admin.tokens];
    expect(secrets.length).toBeGreaterThanOrEqual(4);
    for (const s of secrets) expect(s).toMatch(/^\$\{[A-Z_][A-Z0-9_]*\}$/);
  });

  it('grants app_reader to analysts and engineering, then app_writer to engineering, on app', () => {
    expect(config().roles.map((r) => ({ role: r.role, groups: r.groups, databases: r.databases }))).toEqual([
      { role: 'app_reader', groups: ['analysts', 'engineering'], databases: ['app'] },
      { role: 'app_writer', groups: ['engineering'], databases: ['app'] },
    ]);
  });

  it('verifies the upstream and uses absolute container paths only', () => {
    const c = config();
    expect(c.upstream.tls.mode).toBe('verify-full');
    expect(c.proxy.allowPlaintext).toBe(false);
    const paths = [...configFiles(c).map(([, p]) => p), c.directory.store.replace(/^sqlite:/, ''), c.audit.file];
    for (const p of paths) expect(p).toMatch(/^\/(etc|var\/lib)\/rolegate\//);
    expect(c.directory.store).toMatch(/^sqlite:\//);
  });
});

// ---- docker-compose.yml -----------------------------------------------------------------------------
describe('docker-compose.yml', () => {
  it('runs postgres 16, keycloak and rolegate, each from a pinned image tag or a build', () => {
    expect(Object.keys(compose.services).sort()).toEqual(['keycloak', 'postgres', 'rolegate']);
    for (const [name, svc] of Object.entries(compose.services)) {
      if (svc.build !== undefined) continue;
      expect(svc.image, name).toBeDefined();
      const m = /^(?<repo>[^@]+?)(?::(?<tag>[^:/@]+))?(?:@sha256:[0-9a-f]{64})?$/.exec(svc.image!);
      expect(m?.groups?.tag, `${name}: ${svc.image} has no tag`).toBeDefined();
      expect(m!.groups!.tag, `${name}: ${svc.image}`).toMatch(/^\d+\.\d+/);
    }
    expect(service('postgres').image).toMatch(/^postgres:16\.\d+/);
    expect(service('keycloak').image).toMatch(/^quay\.io\/keycloak\/keycloak:\d+\.\d+\.\d+$/);
    expect(service('rolegate').build).toBeDefined();
  });

  it('defines every ${VAR} in deploy/.env.example (or gives it a default), and the example holds nothing unused', () => {
    const refs = composeVariables(compose);
    const missing = refs.filter((r) => !r.hasDefault && !(r.name in envExample)).map((r) => r.name);
    expect(missing).toEqual([]);
    const used = new Set(refs.map((r) => r.name));
    expect(Object.keys(envExample).filter((k) => !used.has(k))).toEqual([]);
  });

  it('bind-mounts only files that exist in the repository or that make-certs.sh makes, all read-only', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const m of serviceMounts(svc).filter((x) => x.kind === 'bind')) {
        const rel = repoRel(m.source);
        expect(m.source.startsWith('./'), `${name}: ${m.source} is not relative to the repository`).toBe(true);
        expect(existsSync(repoPath(rel)) || madeByMakeCerts(rel), `${name}: ${m.source} neither exists nor is made by make-certs.sh`).toBe(true);
        expect(m.readOnly, `${name}: ${m.source} is mounted writable`).toBe(true);
      }
    }
  });

  it('mounts the CA key nowhere: each container gets its own certificate folder', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const m of serviceMounts(svc).filter((x) => x.kind === 'bind' && repoRel(x.source).startsWith(CERTS_DIR))) {
        const rel = repoRel(m.source);
        expect(rel, name).not.toBe(CERTS_DIR);
        expect(rel.startsWith(`${CERTS_DIR}/ca`), `${name} mounts the CA folder`).toBe(false);
      }
    }
  });

  it('declares the named volumes and networks it uses; PostgreSQL is only on an internal network', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const m of serviceMounts(svc).filter((x) => x.kind === 'volume')) {
        expect(m.source, `${name}: anonymous volume at ${m.target}`).not.toBe('');
        expect(Object.keys(compose.volumes ?? {}), name).toContain(m.source);
      }
      for (const n of serviceNetworks(svc)) expect(Object.keys(compose.networks ?? {}), name).toContain(n);
    }
    for (const n of serviceNetworks(service('postgres'))) expect(compose.networks?.[n]?.internal, n).toBe(true);
    expect(service('postgres').ports ?? []).toEqual([]);
  });

  it("publishes on the host's 127.0.0.1 only, rolegate's ports being proxy.listen and admin.listen", () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      for (const p of servicePorts(svc)) expect(p.hostIp, `${name}: ${p.containerPort} is published on every interface`).toBe('127.0.0.1');
    }
    const c = config();
    const ports = servicePorts(service('rolegate'));
    expect(ports.map((p) => p.containerPort).sort()).toEqual([c.proxy.listen.port, c.admin.listen.port].sort());
    // A listener on the container's loopback would be unreachable through a published port.
    expect(c.proxy.listen.host).toBe('0.0.0.0');
    expect(c.admin.listen.host).toBe('0.0.0.0');
  });

  it('passes the rolegate service every variable its config references', () => {
    const env = serviceEnv(service('rolegate'));
    for (const name of configVariables(configText)) {
      expect(env.has(name), `${name} is not passed to rolegate`).toBe(true);
      expect(env.get(name)).toMatch(new RegExp(`^\\$\\{${name}(:\\?[^}]*)?\\}$`));
    }
  });

  it('mounts every path the config uses: files read-only from the repository or make-certs.sh, state on named volumes', () => {
    const c = config();
    const svc = service('rolegate');
    const mounts = serviceMounts(svc);
    for (const [key, path] of configFiles(c)) {
      const host = hostFileFor(svc, path);
      expect(host, `${key} (${path}) is on no bind mount`).toBeDefined();
      expect(existsSync(repoPath(host!)) || madeByMakeCerts(host!), `${key}: ${host} is neither in the repository nor made by make-certs.sh`).toBe(true);
    }
    for (const [key, path] of [['directory.store', c.directory.store.slice('sqlite:'.length)], ['audit.file', c.audit.file]] as const) {
      const hit = mountFor(mounts, path);
      expect(hit?.mount.kind, `${key} (${path}) is not on a named volume`).toBe('volume');
      expect(hit!.mount.readOnly, key).toBe(false);
    }
    expect(svc.read_only).toBe(true);
  });

  it('points upstream.host and port at the postgres service, on a network rolegate shares', () => {
    const c = config();
    expect(serviceNamed(c.upstream.host)).toBe('postgres');
    expect(sharesNetwork('rolegate', 'postgres')).toBe(true);
    const command = [service('postgres').command ?? []].flat().join(' ');
    const port = /(?:^|\s)port=(\d+)/.exec(command)?.[1] ?? '5432';
    expect(c.upstream.port).toBe(Number(port));
    expect(envOf('postgres').get('POSTGRES_DB')).toBe('app');
    expect(c.roles.flatMap((r) => r.databases)).toEqual(expect.arrayContaining(['app']));
  });

  it('reaches the issuer by its service name: KC_HOSTNAME, port and realm agree with oidc.issuer', () => {
    const issuer = new URL(config().oidc.issuer);
    expect(issuer.protocol).toBe('https:');
    expect(serviceNamed(issuer.hostname)).toBe('keycloak');
    expect(sharesNetwork('rolegate', 'keycloak')).toBe(true);
    const kc = envOf('keycloak');
    // Tokens carry iss = KC_HOSTNAME + /realms/<realm>, exactly.
    expect(`${kc.get('KC_HOSTNAME')}/realms/${realm.realm}`).toBe(config().oidc.issuer);
    expect(kc.get('KC_HTTP_ENABLED')).toBe('false');
    expect(Number(kc.get('KC_HTTPS_PORT') ?? '8443')).toBe(Number(issuer.port || 443));
    // The host uses the same URL (with "127.0.0.1 keycloak" in /etc/hosts): same port outside.
    expect(servicePorts(service('keycloak')).some((p) => p.hostPort === Number(issuer.port) && p.containerPort === Number(issuer.port))).toBe(true);
    for (const key of ['KC_HTTPS_CERTIFICATE_FILE', 'KC_HTTPS_CERTIFICATE_KEY_FILE']) {
      const host = hostFileFor(service('keycloak'), kc.get(key) ?? '');
      expect(host && madeByMakeCerts(host), `${key} is not a file made by make-certs.sh`).toBe(true);
    }
    expect(kc.get('KC_HEALTH_ENABLED')).toBe('true');
    expect(kc.get('KC_HTTP_MANAGEMENT_SCHEME')).toBe('http');
    const command = [service('keycloak').command ?? []].flat();
    expect(command).toEqual(expect.arrayContaining(['start-dev', '--import-realm']));
    expect(mountFor(serviceMounts(service('keycloak')), '/opt/keycloak/data/import/realm-rolegate.json')?.mount.source).toBe('./deploy/keycloak/realm-rolegate.json');
  });

  it('passes Keycloak every placeholder of the realm file', () => {
    const placeholders = configVariables(readRepo('deploy/keycloak/realm-rolegate.json'));
    expect(placeholders.length).toBeGreaterThan(0);
    const env = envOf('keycloak');
    for (const name of placeholders) expect(env.has(name), `${name} is not passed to keycloak`).toBe(true);
  });

  it('gives PostgreSQL its init script, pg_hba.conf and TLS files where the server is told to look', () => {
    const svc = service('postgres');
    const mounts = serviceMounts(svc);
    const command = [svc.command ?? []].flat();
    const setting = (name: string) => command.find((a) => a.startsWith(`${name}=`))?.slice(name.length + 1);
    expect(setting('ssl')).toBe('on');
    expect(setting('password_encryption')).toBe('scram-sha-256');
    expect(hostFileFor(svc, setting('hba_file') ?? '')).toBe('deploy/postgres/pg_hba.conf');
    const init = mounts.find((m) => repoRel(m.source) === 'deploy/postgres/init.sh');
    expect(init?.target).toMatch(/^\/docker-entrypoint-initdb\.d\/[^/]+\.sh$/);
    expect(envOf('postgres').get('POSTGRES_INITDB_ARGS')).toContain('--auth-host=scram-sha-256');

    // The wrapper copies the mounted key to where ssl_key_file points (PostgreSQL's ownership rule).
    const wrapper = readRepo('deploy/postgres/tls-entrypoint.sh');
    const entry = [svc.entrypoint ?? []].flat();
    expect(hostFileFor(svc, entry[entry.length - 1] ?? '')).toBe('deploy/postgres/tls-entrypoint.sh');
    const src = /^src=(\S+)$/m.exec(wrapper)?.[1];
    const dst = /^dst=(\S+)$/m.exec(wrapper)?.[1];
    expect(setting('ssl_cert_file')).toBe(`${dst}/server.crt`);
    expect(setting('ssl_key_file')).toBe(`${dst}/server.key`);
    for (const f of ['server.crt', 'server.key']) {
      const host = hostFileFor(svc, `${src}/${f}`);
      expect(host && madeByMakeCerts(host), `${src}/${f} is not made by make-certs.sh`).toBe(true);
    }
    expect(wrapper).toMatch(/^exec docker-entrypoint\.sh "\$@"$/m);

    // Variables the init script requires are passed.
    const required = [...readRepo('deploy/postgres/init.sh').matchAll(/^: "\$\{([A-Z_]+):\?/gm)].map((m) => m[1]!);
    expect(required).toEqual(['APP_READER_PASSWORD', 'APP_WRITER_PASSWORD']);
    for (const name of required) expect(envOf('postgres').has(name), name).toBe(true);
  });

  it('admits only the two roles over the network, to app, over TLS, with SCRAM (pg_hba.conf)', () => {
    const lines = readRepo('deploy/postgres/pg_hba.conf').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean).map((l) => l.split(/\s+/));
    for (const [type, db, user, , method] of lines.filter((l) => l[0] !== 'local')) {
      if (method === 'reject') continue;
      expect({ type, db, method }).toEqual({ type: 'hostssl', db: 'app', method: 'scram-sha-256' });
      expect(user!.split(',').sort()).toEqual(['app_reader', 'app_writer']);
    }
    expect(lines.at(-1)).toEqual(['host', 'all', 'all', 'all', 'reject']);
  });

  it('starts rolegate only once postgres and keycloak report healthy', () => {
    const deps = service('rolegate').depends_on;
    expect(deps).toEqual({ postgres: { condition: 'service_healthy' }, keycloak: { condition: 'service_healthy' } });
    for (const name of ['postgres', 'keycloak']) expect(service(name).healthcheck?.test, name).toBeDefined();
  });

  it("runs the Dockerfile's command unchanged, and it names the mounted config", () => {
    const svc = service('rolegate');
    expect(svc.command).toBeUndefined();
    expect(svc.entrypoint).toBeUndefined();
    expect(svc.user).toBeUndefined();
    const cmd = execForm(lastIn(runtimeStage(), 'CMD'));
    const configPath = cmd[cmd.indexOf('--config') + 1];
    expect(cmd[0]).toBe('serve');
    expect(hostFileFor(svc, configPath ?? '')).toBe(repoRel(CONFIG_MOUNT_SOURCE));
    // The probe's URL follows the admin listener: its port, and https because admin.tls is set.
    const probe = new URL(serviceEnv(svc).get('ROLEGATE_HEALTHCHECK_URL') ?? '');
    expect(probe.protocol).toBe(config().admin.tls ? 'https:' : 'http:');
    expect(Number(probe.port)).toBe(config().admin.listen.port);
    expect(probe.pathname).toBe('/healthz');
  });
});

// ---- Dockerfile and .dockerignore -------------------------------------------------------------------
function runtimeStage(): Instruction[] {
  const last = Math.max(...dockerfile.map((i) => i.stage));
  return dockerfile.filter((i) => i.stage === last);
}

function lastIn(stage: Instruction[], keyword: string): string {
  const found = stage.filter((i) => i.keyword === keyword).at(-1);
  if (found === undefined) throw new Error(`the runtime stage has no ${keyword}`);
  return found.args;
}

function envOf(name: string): Map<string, string> {
  return serviceEnv(service(name));
}

/** The `node -e` program of the HEALTHCHECK, run here as Docker would run it. */
function healthcheckProgram(): string[] {
  const args = lastIn(runtimeStage(), 'HEALTHCHECK');
  return execForm(args.slice(args.indexOf('CMD ') + 4));
}

describe('Dockerfile and .dockerignore', () => {
  it('builds in one stage on a pinned node slim image and runs in another as a non-root user', () => {
    const args = Object.fromEntries(dockerfile.filter((i) => i.keyword === 'ARG').map((i) => i.args.split('=') as [string, string]));
    const froms = dockerfile.filter((i) => i.keyword === 'FROM').map((i) => i.args.replace(/\$\{(\w+)\}/g, (_, n: string) => args[n] ?? ''));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) expect(f).toMatch(/^node:(20|22)\.\d+\.\d+-bookworm-slim( AS \w+)?$/i);

    const build = dockerfile.filter((i) => i.stage === 0);
    const runs = build.filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    expect(runs).toMatch(/apt-get install [^\n]*python3[^\n]*make[^\n]*g\+\+/);
    expect(runs).toMatch(/npm ci\b/);
    expect(runs).toMatch(/npm run build\b/);
    expect(runs).toMatch(/npm prune --omit=dev\b/);

    const user = lastIn(runtimeStage(), 'USER');
    expect(user.split(':')[0]).not.toMatch(/^(root|0)$/);
    expect(execForm(lastIn(runtimeStage(), 'ENTRYPOINT'))).toEqual(['node', 'bin/rolegate.js']);
    expect(execForm(lastIn(runtimeStage(), 'CMD'))).toEqual(['serve', '--config', '/etc/rolegate/rolegate.yaml']);
  });

  it('exposes the config ports, probes /healthz, and owns the volume mount points as its user', () => {
    const c = config();
    const exposed = runtimeStage().filter((i) => i.keyword === 'EXPOSE').flatMap((i) => i.args.split(/\s+/)).map(Number);
    expect(exposed.sort()).toEqual([c.proxy.listen.port, c.admin.listen.port].sort());
    const defaultProbe = runtimeStage().find((i) => i.keyword === 'ENV' && i.args.startsWith('ROLEGATE_HEALTHCHECK_URL='));
    expect(defaultProbe?.args).toMatch(/\/healthz$/);
    expect(healthcheckProgram().slice(0, 2)).toEqual(['node', '-e']);

    const uid = lastIn(runtimeStage(), 'USER');
    const runs = runtimeStage().filter((i) => i.keyword === 'RUN').map((i) => i.args).join('\n');
    for (const m of serviceMounts(service('rolegate')).filter((x) => x.kind === 'volume')) {
      expect(runs, `${m.target} is not made for uid ${uid}`).toMatch(new RegExp(`chown ${uid}\\b[^\\n]*${m.target.replace(/[/.]/g, '\\$&')}`));
    }
  });

  it('copies every folder tsconfig.build.json compiles, and the build context admits each of them', () => {
    const include = (JSON.parse(readRepo('tsconfig.build.json')) as { include: string[] }).include;
    const copied = dockerfile
      .filter((i) => i.stage === 0 && i.keyword === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
      .map((s) => s.replace(/^\.\//, ''));
    expect(copied).toEqual(expect.arrayContaining([...include, 'bin', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json']));
    for (const src of copied) {
      expect(existsSync(repoPath(src)), `COPY ${src}: not in the repository`).toBe(true);
      const sample = statSync(repoPath(src)).isDirectory() ? `${src}/${readdirSync(repoPath(src)).find((f) => f.endsWith('.ts') || f.endsWith('.js'))}` : src;
      expect(dockerContextIncludes(dockerignore, sample), `.dockerignore keeps out ${sample}`).toBe(true);
    }
  });

  it('keeps secrets, keys and local state out of the build context', () => {
    for (const path of ['deploy/.env', 'deploy/certs/ca/ca.key', 'deploy/certs/rolegate/gateway.key', '.env', 'node_modules/pg/package.json', 'dist/cli/main.js', '.git/config', 'test/deploy/compose.test.ts', 'proxy/x.test.ts']) {
      expect(dockerContextIncludes(dockerignore, path), path).toBe(false);
    }
  });

  describe('the HEALTHCHECK probe, run against real listeners', () => {
    const servers: Server[] = [];
    afterAll(async () => {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    });

    async function serve(status: number, tls: boolean): Promise<string> {
      const handler = (req: { url?: string }, res: { writeHead(s: number): void; end(b: string): void }) => {
        res.writeHead(req.url === '/healthz' ? status : 404);
        res.end('{}');
      };
      const server = tls
        ? createHttpsServer({ cert: readFileSync(certPath('rolegate/admin.crt')), key: readFileSync(certPath('rolegate/admin.key')) }, handler)
        : createHttpServer(handler);
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      return `${tls ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
    }

    async function probe(url: string): Promise<number> {
      const [, flag, program] = healthcheckProgram();
      try {
        await run(process.execPath, [flag!, program!], { env: { PATH: process.env.PATH, ROLEGATE_HEALTHCHECK_URL: url }, timeout: 15_000 });
        return 0;
      } catch (err) {
        return (err as { code?: number }).code ?? -1;
      }
    }

    it('passes on 200 over HTTP and over HTTPS with the admin certificate', async () => {
      expect(await probe(await serve(200, false))).toBe(0);
      expect(await probe(await serve(200, true))).toBe(0);
    });

    it('fails on 503 and when nothing listens', async () => {
      expect(await probe(await serve(503, false))).toBe(1);
      expect(await probe(`http://127.0.0.1:${await freePort()}/healthz`)).toBe(1);
    });
  });
});

// ---- deploy/certs/make-certs.sh ---------------------------------------------------------------------
function listFiles(dir: string, prefix = ''): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(dir, posix.join(prefix, e.name)) : [posix.join(prefix, e.name)]);
}

const cert = (rel: string): X509Certificate => new X509Certificate(readFileSync(certPath(rel)));

describe('deploy/certs/make-certs.sh', () => {
  it('writes exactly the files it lists, and the compose file mounts only those', () => {
    expect(listFiles(certsDir.path).sort()).toEqual([...certFiles].sort());
    expect(certsRun.stdout).toContain(`wrote ${certFiles.length} files`);
  });

  it('issues certificates that openssl verifies against the CA', async () => {
    for (const f of certFiles.filter((x) => x.endsWith('.crt'))) {
      const { stdout } = await run('openssl', ['verify', '-CAfile', certPath('ca/ca.crt'), certPath(f)]);
      expect(stdout.trim()).toBe(`${certPath(f)}: OK`);
    }
    expect(readFileSync(certPath('rolegate/ca.crt'), 'utf8')).toBe(readFileSync(certPath('ca/ca.crt'), 'utf8'));
    const ca = cert('ca/ca.crt');
    expect(ca.ca).toBe(true);
    for (const f of certFiles.filter((x) => x.endsWith('.crt') && !x.endsWith('ca.crt'))) {
      expect(cert(f).ca, f).toBe(false);
      expect(cert(f).checkIssued(ca), f).toBe(true);
    }
  });

  it('names in each certificate the host its clients check', () => {
    const c = config();
    const mounted = (svc: string, containerPath: string) => hostFileFor(service(svc), containerPath)!.slice(CERTS_DIR.length + 1);
    // rolegate verifies PostgreSQL as upstream.host and Keycloak as the issuer's host.
    const pgCert = mounted('postgres', `${/^src=(\S+)$/m.exec(readRepo('deploy/postgres/tls-entrypoint.sh'))![1]}/server.crt`);
    expect(cert(pgCert).checkHost(c.upstream.host)).toBe(c.upstream.host);
    const kcCert = mounted('keycloak', envOf('keycloak').get('KC_HTTPS_CERTIFICATE_FILE')!);
    expect(cert(kcCert).checkHost(new URL(c.oidc.issuer).hostname)).toBe(new URL(c.oidc.issuer).hostname);
    // People reach the published ports as localhost (the walkthrough's psql and curl commands).
    for (const path of [c.proxy.tls!.cert, c.admin.tls!.cert]) {
      const rel = mounted('rolegate', path);
      expect(cert(rel).checkHost('localhost'), rel).toBe('localhost');
      expect(cert(rel).checkIP('127.0.0.1'), rel).toBe('127.0.0.1');
    }
    expect(cert(pgCert).checkHost('localhost')).toBeUndefined();
  });

  it('pairs every key with its certificate, and keeps keys private (0600)', () => {
    for (const key of certFiles.filter((x) => x.endsWith('.key'))) {
      const crt = key.replace(/\.key$/, '.crt');
      expect(cert(crt).checkPrivateKey(createPrivateKey(readFileSync(certPath(key)))), key).toBe(true);
      expect(statSync(certPath(key)).mode & 0o777, key).toBe(0o600);
    }
    expect(statSync(certPath('ca')).mode & 0o777).toBe(0o700);
  });

  it('keeps the CA on a second run and issues the service certificates again', async () => {
    const caBefore = cert('ca/ca.crt').fingerprint256;
    const leafBefore = cert('rolegate/gateway.crt').serialNumber;
    const again = await run('bash', [repoPath('deploy/certs/make-certs.sh'), certsDir.path], { timeout: 60_000 });
    expect(again.stdout).toContain('kept the existing CA');
    expect(cert('ca/ca.crt').fingerprint256).toBe(caBefore);
    expect(cert('rolegate/gateway.crt').serialNumber).not.toBe(leafBefore);
    expect(listFiles(certsDir.path).sort()).toEqual([...certFiles].sort());
  });
});

// ---- deploy/keycloak/realm-rolegate.json ------------------------------------------------------------
interface Mapper {
  name: string;
  protocolMapper: string;
  config: Record<string, string>;
}
interface Client {
  clientId: string;
  publicClient?: boolean;
  secret?: string;
  serviceAccountsEnabled?: boolean;
  directAccessGrantsEnabled?: boolean;
  standardFlowEnabled?: boolean;
  implicitFlowEnabled?: boolean;
  attributes?: Record<string, string>;
  protocolMappers?: Mapper[];
}
interface User {
  username: string;
  email?: string;
  enabled?: boolean;
  groups?: string[];
  serviceAccountClientId?: string;
  credentials?: { type: string; value: string; temporary?: boolean }[];
}
interface Realm {
  realm: string;
  enabled: boolean;
  sslRequired?: string;
  groups?: { name: string; path?: string }[];
  users?: User[];
  clients?: Client[];
}

const client = (id: string): Client => {
  const c = realm.clients?.find((x) => x.clientId === id);
  if (c === undefined) throw new Error(`realm has no client ${id}`);
  return c;
};
const realmUser = (username: string): User => {
  const u = realm.users?.find((x) => x.username === username);
  if (u === undefined) throw new Error(`realm has no user ${username}`);
  return u;
};

describe('deploy/keycloak/realm-rolegate.json', () => {
  it('is the realm of oidc.issuer, HTTPS only', () => {
    expect(new URL(config().oidc.issuer).pathname).toBe(`/realms/${realm.realm}`);
    expect(realm.enabled).toBe(true);
    expect(realm.sslRequired).toBe('all');
  });

  it('has a public device-flow client for rolegate login, and nothing else enabled on it', () => {
    const cli = client('rolegate-cli');
    expect(cli.publicClient).toBe(true);
    expect(cli.attributes?.['oauth2.device.authorization.grant.enabled']).toBe('true');
    expect(cli.secret).toBeUndefined();
    expect([cli.standardFlowEnabled, cli.implicitFlowEnabled, cli.directAccessGrantsEnabled, cli.serviceAccountsEnabled]).toEqual([false, false, false, false]);
  });

  it('has a confidential client-credentials client whose secret comes from the environment', () => {
    const svc = client('rolegate-reports');
    expect(svc.publicClient).toBe(false);
    expect(svc.serviceAccountsEnabled).toBe(true);
    expect(svc.secret).toMatch(/^\$\{[A-Z_]+\}$/);
    expect(svc.directAccessGrantsEnabled).toBe(false);
    expect(svc.standardFlowEnabled).toBe(false);
    expect(realmUser('service-account-rolegate-reports').serviceAccountClientId).toBe('rolegate-reports');
    expect(realmUser('service-account-rolegate-reports').email).toBe('reports@example.com');
  });

  it("puts oidc.audience in aud, and the identity claim and sub in every client's access tokens", () => {
    const c = config();
    for (const cl of realm.clients ?? []) {
      const mappers = cl.protocolMappers ?? [];
      const audience = mappers.find((m) => m.protocolMapper === 'oidc-audience-mapper');
      expect(audience?.config['included.custom.audience'], cl.clientId).toBe(c.oidc.audience);
      expect(audience?.config['access.token.claim'], cl.clientId).toBe('true');
      const identity = mappers.find((m) => m.config['claim.name'] === c.oidc.identityClaim);
      expect(identity?.config['user.attribute'], cl.clientId).toBe('email');
      expect(identity?.config['access.token.claim'], cl.clientId).toBe('true');
      expect(mappers.find((m) => m.protocolMapper === 'oidc-sub-mapper')?.config['access.token.claim'], cl.clientId).toBe('true');
    }
  });

  it('has alice in analysts and bob in engineering, with emails and passwords from the environment', () => {
    expect(realmUser('alice')).toMatchObject({ email: 'alice@example.com', enabled: true, groups: ['/analysts'] });
    expect(realmUser('bob')).toMatchObject({ email: 'bob@example.com', enabled: true, groups: ['/engineering'] });
    for (const u of [realmUser('alice'), realmUser('bob')]) {
      expect(u.credentials).toEqual([{ type: 'password', value: expect.stringMatching(/^\$\{[A-Z_]+\}$/), temporary: false }]);
    }
  });

  it('defines every group the roles grant, and every group a user is in', () => {
    const groups = new Set((realm.groups ?? []).map((g) => g.name));
    for (const g of config().roles.flatMap((r) => r.groups)) expect(groups.has(g), g).toBe(true);
    for (const u of realm.users ?? []) for (const g of u.groups ?? []) expect(groups.has(g.replace(/^\//, '')), `${u.username}: ${g}`).toBe(true);
  });
});

// ---- deploy/README.md -------------------------------------------------------------------------------
describe('deploy/README.md (the walkthrough)', () => {
  it('logs in with the exact issuer, the realm clients and the CA make-certs.sh writes', () => {
    // Shell line continuations joined: one command per line.
    const logins = [...walkthrough.replace(/\\\n\s*/g, ' ').matchAll(/rolegate\.js login([^\n]*)/g)].map((m) => m[1]!);
    expect(logins.length).toBeGreaterThanOrEqual(3);
    for (const l of logins) {
      expect(/--issuer (\S+)/.exec(l)?.[1], l).toBe(config().oidc.issuer);
      const clientId = /--client-id (\S+)/.exec(l)?.[1];
      expect(realm.clients?.map((c) => c.clientId), l).toContain(clientId);
      const ca = /--ca (\S+)/.exec(l)?.[1] ?? '';
      expect(ca === `${CERTS_DIR}/ca/ca.crt` || hostFileFor(service('rolegate'), ca) === `${CERTS_DIR}/rolegate/ca.crt`, l).toBe(true);
    }
    expect(walkthrough).toContain(`127.0.0.1 ${new URL(config().oidc.issuer).hostname}`);
  });

  it('provisions over SCIM exactly the people of the realm, and the groups the roles grant', () => {
    const userNames = [...walkthrough.matchAll(/"userName":"([^"]+)"/g)].map((m) => m[1]!);
    expect(userNames.sort()).toEqual((realm.users ?? []).map((u) => u.email).sort());
    const groups = [...walkthrough.matchAll(/displayName:"([^"]+)"/g)].map((m) => m[1]!);
    expect(groups.sort()).toEqual([...new Set(config().roles.flatMap((r) => r.groups))].sort());
    const scimUrl = /^SCIM=(\S+)$/m.exec(walkthrough)?.[1] ?? '';
    expect(scimUrl).toBe(`https://localhost:${config().admin.listen.port}/scim/v2`);
  });

  it('connects psql to the published proxy port, verifying the gateway certificate', () => {
    const c = config();
    const conns = [...walkthrough.matchAll(/psql "([^"]+)"/g)].map((m) => Object.fromEntries(m[1]!.split(' ').map((kv) => kv.split('=') as [string, string])));
    expect(conns.length).toBeGreaterThanOrEqual(4);
    const people = (realm.users ?? []).map((u) => u.email);
    for (const conn of conns) {
      expect(Number(conn.port)).toBe(c.proxy.listen.port);
      expect(conn.host).toBe('localhost');
      expect(conn.sslmode).toBe('verify-full');
      expect(conn.sslrootcert).toBe(`${CERTS_DIR}/ca/ca.crt`);
      expect(c.roles.flatMap((r) => r.databases)).toContain(conn.dbname);
      expect([...people, ...c.roles.map((r) => r.role)]).toContain(conn.user);
    }
  });

  it('uses the admin port and the files the deployment really has', () => {
    for (const m of walkthrough.matchAll(/https:\/\/localhost:(\d+)\//g)) expect(Number(m[1])).toBe(config().admin.listen.port);
    for (const m of walkthrough.matchAll(/\/var\/lib\/rolegate\/audit\/[\w.]+/g)) expect(m[0]).toBe(config().audit.file);
    for (const m of walkthrough.matchAll(/deploy\/[\w./-]+\.(?:sh|json|yaml|example|md|conf)\b/g)) expect(existsSync(repoPath(m[0])), m[0]).toBe(true);
  });
});

// ---- deploy/postgres/init.sh against a real PostgreSQL ----------------------------------------------
describe('deploy/postgres/init.sh and pg_hba.conf, on a real PostgreSQL', () => {
  let dir: TempDir;
  let cluster: LocalPostgres;
  const superPassword = 'test-superuser-password';
  const passwords = { app_reader: envExample.APP_READER_PASSWORD!, app_writer: envExample.APP_WRITER_PASSWORD! };

  /** libpq connects to 127.0.0.1 but checks the certificate against the name `postgres`, as rolegate does. */
  const libpqEnv = (user: string, password: string, database: string, sslmode = 'verify-full'): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    PGHOST: 'postgres',
    PGHOSTADDR: '127.0.0.1',
    PGPORT: String(cluster.port),
    PGUSER: user,
    PGPASSWORD: password,
    PGDATABASE: database,
    PGSSLMODE: sslmode,
    PGSSLROOTCERT: certPath('ca/ca.crt'),
    PGCONNECT_TIMEOUT: '10',
  });

  async function psql(user: string, database: string, sql: string, sslmode?: string): Promise<{ ok: boolean; out: string }> {
    const password = user === 'postgres' ? superPassword : passwords[user as keyof typeof passwords] ?? 'wrong-password';
    try {
      const { stdout } = await run('psql', ['-X', '-At', '-v', 'ON_ERROR_STOP=1', '-c', sql], { env: libpqEnv(user.replace(/^wrong:/, ''), password, database, sslmode), timeout: 30_000 });
      return { ok: true, out: stdout.trim() };
    } catch (err) {
      return { ok: false, out: String((err as { stderr?: string }).stderr ?? err).trim() };
    }
  }

  beforeAll(async () => {
    dir = await tempDir('rolegate-deploy-pg-');
    const hba = readRepo('deploy/postgres/pg_hba.conf').split('\n').map((l) => l.replace(/#.*/, '').trim()).filter((l) => l !== '' && !l.startsWith('local'));
    cluster = await startLocalPostgres({
      dir: dir.path,
      port: await freePort(),
      superuserPassword: superPassword,
      tls: { certPath: certPath('postgres/server.crt'), keyPath: certPath('postgres/server.key') },
      // Test-only first line: the superuser runs init.sh over TCP here, not on the container's socket.
      hba: ['hostssl all postgres 127.0.0.1/32 scram-sha-256', ...hba],
    });
    // What the image's entrypoint does before the init scripts: POSTGRES_DB.
    const created = await psql('postgres', 'postgres', 'CREATE DATABASE app');
    expect(created.ok, created.out).toBe(true);
    await run('bash', [repoPath('deploy/postgres/init.sh')], {
      env: { ...libpqEnv('postgres', superPassword, 'postgres'), POSTGRES_USER: 'postgres', POSTGRES_DB: 'app', ...{ APP_READER_PASSWORD: passwords.app_reader, APP_WRITER_PASSWORD: passwords.app_writer } },
      timeout: 60_000,
    });
  });

  afterAll(async () => {
    await cluster?.stop();
    await dir?.cleanup();
  });

  it('refuses to run without the role passwords', async () => {
    const err = await run('bash', [repoPath('deploy/postgres/init.sh')], { env: { PATH: process.env.PATH, APP_WRITER_PASSWORD: 'x' } }).catch((e: { stderr: string }) => e);
    expect((err as { stderr: string }).stderr).toContain('APP_READER_PASSWORD must be set');
  });

  it('lets app_reader read over verified TLS with its password, and write nothing', async () => {
    expect(await psql('app_reader', 'app', 'select current_user, count(*) from customers')).toEqual({ ok: true, out: 'app_reader|3' });
    const insert = await psql('app_reader', 'app', "insert into customers (name, email) values ('x', 'x@example.net')");
    expect(insert.ok).toBe(false);
    expect(insert.out).toMatch(/read-only transaction/);
    // Without the read-only default, the grants alone still refuse it.
    const granted = await psql('app_reader', 'app', "begin read write; insert into customers (name, email) values ('x', 'x@example.net'); commit");
    expect(granted.out).toMatch(/permission denied for table customers/);
  });

  it('lets app_writer change rows but not the schema', async () => {
    const dml = await psql('app_writer', 'app', [
      "insert into orders (customer_id, amount) values (2, 5) returning status",
      "update orders set status = 'paid' where amount = 5",
      'delete from orders where amount = 5',
      'select current_user',
    ].join('; '));
    expect(dml.ok, dml.out).toBe(true);
    expect(dml.out.split('\n').at(-1)).toBe('app_writer');
    for (const ddl of ['create table app.t (i int)', 'create table public.t (i int)', 'truncate orders', 'alter table orders add column x int', 'drop table orders']) {
      const r = await psql('app_writer', 'app', ddl);
      expect(r.ok, ddl).toBe(false);
      expect(r.out, ddl).toMatch(/permission denied|must be owner/);
    }
  });

  it('creates plain LOGIN roles with SCRAM verifiers, CONNECT on app only', async () => {
    const roles = await psql('postgres', 'app', `select rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin,
      left(rolpassword, 14), has_database_privilege(rolname, 'app', 'CONNECT'), has_database_privilege(rolname, 'postgres', 'CONNECT'),
      has_database_privilege(rolname, 'template1', 'CONNECT')
      from pg_authid where rolname in ('app_reader', 'app_writer') order by rolname`);
    expect(roles.out.split('\n')).toEqual([
      'app_reader|f|f|f|f|f|t|SCRAM-SHA-256$|t|f|f',
      'app_writer|f|f|f|f|f|t|SCRAM-SHA-256$|t|f|f',
    ]);
    expect((await psql('app_reader', 'postgres', 'select 1')).ok).toBe(false);
  });

  it('refuses plaintext connections and wrong passwords', async () => {
    const plain = await psql('app_reader', 'app', 'select 1', 'disable');
    expect(plain.ok).toBe(false);
    expect(plain.out).toMatch(/pg_hba\.conf rejects connection/);
    const wrong = await psql('wrong:app_reader', 'app', 'select 1');
    expect(wrong.ok).toBe(false);
    expect(wrong.out).toMatch(/password authentication failed for user "app_reader"/);
  });
});
