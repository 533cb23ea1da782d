// What the validated configuration becomes at run time for the data path: the role rules with their
// credentials in memory (certificate files read once here, not per login) and the upstream target.
// Both are read completely before anything is swapped, so a reload that fails changes nothing.
import { readFile } from 'node:fs/promises';
import type { RoleWithCredentials, UpstreamTarget } from '../proxy/session/deps.js';
import { readKeyPair } from '../proxy/tls/server-tls.js';
import type { Config } from './config/schema.js';

export async function loadRoles(config: Readonly<Config>): Promise<RoleWithCredentials[]> {
  return Promise.all(
    config.roles.map(async (r) => ({
      role: r.role,
      groups: r.groups,
      databases: r.databases,
      ...(r.credentials === undefined
        ? {}
        : { credentials: 'password' in r.credentials ? { password: r.credentials.password } : await readKeyPair(r.credentials) }),
    })),
  );
}

export async function upstreamTarget(config: Readonly<Config>): Promise<UpstreamTarget> {
  const { host, port, tls, connectTimeout } = config.upstream;
  return {
    host,
    port,
    tls: { mode: tls.mode, ...(tls.ca ? { ca: await readFile(tls.ca) } : {}) },
    connectTimeoutMs: connectTimeout,
  };
}
