// Redaction of secrets in statement text and parameter values before they reach the audit log
// (docs/design.md §6): `PASSWORD '...'` in CREATE/ALTER ROLE/USER (and user-mapping OPTIONS),
// connection strings with passwords, bearer tokens and JWTs, and values of password-like settings.

const MARK = '[redacted]';

// Cheap first look: most statements contain none of these and skip every other expression.
const HINT = /pass|pwd|secret|token|key|credential|bearer|eyj|:\/\//i;

/** A setting name that holds a secret (`app.password`, `my.api_key`, `x.secret_token`). */
const SECRET_NAME = String.raw`[\w.$"]*(?:password|passwd|pwd|secret|token|api_?key|credential)[\w.$"]*`;

// An SQL string constant, possibly cut off by the prefix rolegate keeps (then it runs to the end):
// E'...' with backslash escapes, '...' with '' for a quote, or $tag$...$tag$.
const LITERAL = String.raw`(?:[eE]'(?:[^'\\]|\\[\s\S]|'')*(?:'|$)|'(?:[^']|'')*(?:'|$)|\$(?<tag>[A-Za-z_]\w*)?\$[\s\S]*?(?:\$\k<tag>\$|$))`;

// libpq keyword/value strings inside a literal: password=secret, password='sec ret' (quotes doubled in SQL).
const CONNINFO = /\b((?:ssl)?password\s*=\s*)(?:'{1,2}(?:[^'\\]|\\.)*'{1,2}|[^\s'")]+)/gi;
// PASSWORD 'x', ENCRYPTED PASSWORD E'x', OPTIONS (password 'x'), PASSWORD $$x$$.
// The keyword must be followed by space or `=`: in set_config('app.password', ...) it is the end of a name.
const PASSWORD_LITERAL = new RegExp(String.raw`\b(password(?:\s*(?::=|=)\s*|\s+))${LITERAL}`, 'gi');
// SET [SESSION|LOCAL] app.password = 'x' | TO x, also inside ALTER ROLE/DATABASE/SYSTEM ... SET.
const SET_SECRET = new RegExp(String.raw`\b(SET\s+(?:SESSION\s+|LOCAL\s+)?${SECRET_NAME}\s*(?:=|\bTO\b)\s*)(?:${LITERAL}|[^\s;,)]+)`, 'gi');
// set_config('app.password', 'x', false).
const SET_CONFIG = new RegExp(String.raw`\b(set_config\s*\(\s*'${SECRET_NAME}'\s*,\s*)${LITERAL}`, 'gi');
// scheme://user:secret@host
const URI_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^:/?#\s'"@]*:)([^@\s'"/]+)@/gi;
const BEARER = /\b(Bearer\s+)[A-Za-z0-9\-._~+/]+=*/gi;
// A JWS/JWT: base64url header that starts with {" (eyJ), then payload and signature, possibly cut
// off by a bounded prefix (so the header and its dot are enough).
const JWT = /\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*)?/g;

/** The statement text with every secret the patterns know replaced by `[redacted]`. */
export function redactSql(text: string): string {
  if (!HINT.test(text)) return text;
  return text
    .replace(JWT, MARK)
    .replace(BEARER, `$1${MARK}`)
    .replace(URI_PASSWORD, `$1${MARK}@`)
    .replace(CONNINFO, `$1${MARK}`)
    .replace(SET_CONFIG, `$1'${MARK}'`)
    .replace(SET_SECRET, `$1'${MARK}'`)
    .replace(PASSWORD_LITERAL, `$1'${MARK}'`);
}

// $n placeholders whose value is a secret: PASSWORD $1, password = $2, set_config('x.password', $3, ...).
const SECRET_PARAM = new RegExp(
  String.raw`\bpassword\s*(?:=|:=)?\s*\$(\d+)|\bSET\s+(?:SESSION\s+|LOCAL\s+)?${SECRET_NAME}\s*(?:=|\bTO\b)\s*\$(\d+)|\bset_config\s*\(\s*'${SECRET_NAME}'\s*,\s*\$(\d+)`,
  'gi',
);

/** 1-based numbers of the parameters that `text` uses as secrets. */
export function secretParameters(text: string | null): ReadonlySet<number> {
  const out = new Set<number>();
  if (text === null || !HINT.test(text)) return out;
  for (const m of text.matchAll(SECRET_PARAM)) out.add(Number(m[1] ?? m[2] ?? m[3]));
  return out;
}

/** A parameter value as audited: redacted whole when the statement uses it as a secret, else its secrets. */
export function redactValue(value: string | null, secret: boolean): string | null {
  if (value === null) return null;
  if (secret) return MARK;
  return redactSql(value);
}
