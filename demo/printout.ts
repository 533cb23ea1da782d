// What `rolegate demo` prints once it is ready: where everything runs, and for each demo person a
// psql command line that works when pasted into a POSIX shell. Pure text; no I/O.
import { DEMO_DATABASE, DemoRole } from './schema.js';

/** One demo person as the printout shows them. */
export interface PrintedPerson {
  userName: string;
  group: string;
  /** Roles the person's groups grant, least privileged first. */
  grantedRoles: readonly string[];
  /** The startup `user` the printed command uses: the person's own name or a role they may use. */
  loginUser: string;
  /** The role that login lands in. */
  role: string;
  token: string;
  scimId: string;
}

export interface ReadyInfo {
  elapsedMs: number;
  dir: string;
  caPath: string;
  postgres: { version: string; source: string; port: number };
  issuer: string;
  proxyPort: number;
  /** `http://127.0.0.1:<port>`: SCIM under /scim/v2, the sessions API under /admin. */
  adminBase: string;
  scimToken: string;
  adminToken: string;
  logPath: string;
  /** The folder of the hash-chained audit files. */
  auditDir: string;
  /** Executable that prints a fresh token for the email given as its argument. */
  tokenScript: string;
  tokenTtlSec: number;
  tokenExpiresAt: Date;
  /** Every role in the config, least privileged first. */
  roles: readonly string[];
  people: readonly PrintedPerson[];
}

const PATCH_URN = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';

/** What each demo role may do on the demo schema (the grants in schema.ts). */
const ABILITIES: Readonly<Record<string, { can: string; cannot: string }>> = {
  [DemoRole.reader]: { can: 'SELECT on orders and customers', cannot: 'INSERT and UPDATE are refused (ERROR: permission denied for table orders)' },
  [DemoRole.writer]: { can: 'SELECT, and also INSERT and UPDATE on orders and customers', cannot: 'DELETE and CREATE TABLE are refused (permission denied)' },
};

/** Always single-quotes for a POSIX shell: the only character to escape inside is `'` itself. */
export function singleQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Leaves words of plainly safe characters bare and single-quotes everything else. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : singleQuote(s);
}

/**
 * A libpq connection-string value: bare when it has no space, quote or backslash, else in single
 * quotes with `'` and `\` backslash-escaped (libpq "Keyword/Value Connection Strings").
 */
export function conninfoValue(v: string): string {
  return v !== '' && /^[^\s'\\]+$/.test(v) ? v : `'${v.replace(/['\\]/g, '\\$&')}'`;
}

/** The conninfo argument of a printed psql command: in double quotes when nothing in it is special there. */
function conninfoArg(conninfo: string): string {
  // `!` is history expansion in interactive bash, even between double quotes.
  return /["$`\\!]/.test(conninfo) ? singleQuote(conninfo) : `"${conninfo}"`;
}

/** `host=localhost port=N dbname=demo user=U sslmode=verify-full sslrootcert=CA`. */
export function psqlConninfo(port: number, user: string, caPath: string): string {
  return [
    ['host', 'localhost'], ['port', String(port)], ['dbname', DEMO_DATABASE], ['user', user],
    ['sslmode', 'verify-full'], ['sslrootcert', caPath],
  ].map(([k, v]) => `${k}=${conninfoValue(v!)}`).join(' ');
}

/** `PGPASSWORD='<token>' psql "<conninfo>"`: further psql arguments (`-c "..."`) may be appended. */
export function psqlCommand(token: string, port: number, user: string, caPath: string): string {
  return `PGPASSWORD=${singleQuote(token)} psql ${conninfoArg(psqlConninfo(port, user, caPath))}`;
}

/** Same, with a token fetched from the demo issuer when the command runs. */
export function freshTokenPsqlCommand(tokenScript: string, email: string, port: number, user: string, caPath: string): string {
  return `PGPASSWORD="$(${shellWord(tokenScript)} ${shellWord(email)})" psql ${conninfoArg(psqlConninfo(port, user, caPath))}`;
}

/** `curl` that sets a SCIM user's `active` with the PATCH body Okta sends to deactivate someone. */
export function scimActiveCurl(adminBase: string, scimToken: string, userId: string, active: boolean): string {
  const body = JSON.stringify({ schemas: [PATCH_URN], Operations: [{ op: 'replace', value: { active } }] });
  return [
    'curl -sS -o /dev/null -w', singleQuote('SCIM answered HTTP %{http_code}\\n'), '-X PATCH',
    '-H', singleQuote(`Authorization: Bearer ${scimToken}`), '-H', singleQuote('Content-Type: application/scim+json'),
    '--data', singleQuote(body), shellWord(`${adminBase}/scim/v2/Users/${userId}`),
  ].join(' ');
}

function duration(sec: number): string {
  if (sec % 3600 === 0) return sec === 3600 ? '1 hour' : `${sec / 3600} hours`;
  if (sec % 60 === 0) return sec === 60 ? '1 minute' : `${sec / 60} minutes`;
  return `${sec} seconds`;
}

/** The lines printed when the demo is ready (the first one is `ready in N s`). */
export function renderReady(info: ReadyInfo): string[] {
  const pgLabel = `PostgreSQL ${info.postgres.version}`.trim();
  const lines = [
    `rolegate demo: ready in ${(info.elapsedMs / 1000).toFixed(1)} s`,
    '',
    `  ${pgLabel.padEnd(17)}  127.0.0.1:${info.postgres.port} (${info.postgres.source}); database "${DEMO_DATABASE}" with tables customers, orders`,
    `  OIDC issuer        ${info.issuer} (development only: it mints tokens for any email)`,
    `  rolegate proxy     localhost:${info.proxyPort}, TLS with the demo CA ${info.caPath}`,
    `  SCIM endpoint      ${info.adminBase}/scim/v2  bearer token ${info.scimToken}`,
    `  sessions API       ${info.adminBase}/admin/sessions  bearer token ${info.adminToken}`,
    `  log                ${info.logPath} (JSON lines)`,
    `  audit log          ${info.auditDir} (rolegate audit timeline --person <name> ${info.auditDir})`,
  ];
  for (const p of info.people) {
    const abilities = ABILITIES[p.role];
    lines.push('', `${p.userName}: SCIM group "${p.group}" grants ${p.grantedRoles.join(', ')}; this command logs in as ${p.role}`);
    if (abilities) lines.push(`  can:     ${abilities.can}`, `  cannot:  ${abilities.cannot}`);
    const refused = info.roles.filter((r) => !p.grantedRoles.includes(r));
    for (const r of refused) lines.push(`  and:     user=${r} is refused at login ("${p.userName}" may not use role "${r}")`);
    if (p.loginUser !== p.userName) {
      lines.push(`  note:    with user=${p.userName} rolegate picks ${p.grantedRoles[0] ?? p.role}, the least privileged role; user=${p.loginUser} asks for that role`);
    }
    lines.push(`  ${psqlCommand(p.token, info.proxyPort, p.loginUser, info.caPath)}`);
  }
  const first = info.people[0];
  lines.push(
    '',
    'Append -c "select current_user" (or any SQL) to a command to run one statement instead of a shell.',
    `Tokens last ${duration(info.tokenTtlSec)} (until ${info.tokenExpiresAt.toTimeString().slice(0, 8)}); sessions end when their token expires. A fresh token:`,
  );
  if (first) {
    lines.push(`  ${freshTokenPsqlCommand(info.tokenScript, first.userName, info.proxyPort, first.loginUser, info.caPath)}`);
    lines.push(
      '',
      `Revoke access the way an identity provider does: with ${first.userName.split('@')[0]}'s psql open, deactivate her over SCIM;`,
      'her session ends within a second (FATAL:  access revoked) and new logins are refused:',
      `  ${scimActiveCurl(info.adminBase, info.scimToken, first.scimId, false)}`,
      'Re-activate her:',
      `  ${scimActiveCurl(info.adminBase, info.scimToken, first.scimId, true)}`,
    );
  }
  lines.push(
    'Live sessions:',
    `  curl -sS -H ${singleQuote(`Authorization: Bearer ${info.adminToken}`)} ${shellWord(`${info.adminBase}/admin/sessions`)}`,
    '',
    `Ctrl+C stops everything and removes ${info.dir}`,
  );
  return lines;
}
