// Which client startup parameters reach the upstream (docs/design.md §2 step 7): an allow-list, and
// `options` only for `-c name=value` settings named in proxy.allowedOptions. Everything else that
// could change who the session is (user, replication, role settings) never passes.

/** Parameters forwarded as they are. `user` is replaced by the decided role, never forwarded. */
const FORWARDED = ['database', 'application_name', 'client_encoding', 'DateStyle', 'TimeZone', 'extra_float_digits', 'search_path'] as const;

export type StartupParamsResult =
  | { ok: true; params: Record<string, string> }
  | { ok: false; sqlstate: '0A000' | '42501'; message: string };

/**
 * Builds the upstream's startup parameters (without `user`) from the client's.
 * A `replication` request is refused; an `options` setting not allowed is refused, not dropped,
 * so a client never silently runs without the statement_timeout it asked for.
 */
export function upstreamStartupParams(client: ReadonlyMap<string, string>, allowedOptions: readonly string[]): StartupParamsResult {
  const params: Record<string, string> = {};
  for (const name of FORWARDED) {
    const v = client.get(name);
    if (v !== undefined) params[name] = v;
  }
  const replication = client.get('replication');
  if (replication !== undefined && !['false', 'off', 'no', '0'].includes(replication.toLowerCase())) {
    return { ok: false, sqlstate: '0A000', message: 'replication connections are not supported through rolegate' };
  }
  const options = client.get('options');
  if (options !== undefined && options.trim() !== '') {
    const parsed = parseOptions(options);
    if (!parsed.ok) return { ok: false, sqlstate: '42501', message: parsed.message };
    const allowed = new Set(allowedOptions.map((o) => o.toLowerCase()));
    for (const { name } of parsed.settings) {
      if (!allowed.has(name.toLowerCase())) return { ok: false, sqlstate: '42501', message: `option "${name}" is not allowed through rolegate` };
    }
    params.options = parsed.settings.map(({ name, value }) => `-c ${escapeOption(`${name}=${value}`)}`).join(' ');
  }
  return { ok: true, params };
}

type ParsedOptions = { ok: true; settings: { name: string; value: string }[] } | { ok: false; message: string };

/**
 * Parses libpq `options` the way the server does (pg_split_opts: whitespace separates words, a
 * backslash escapes the next character), accepting only `-c name=value`, `-cname=value` and
 * `--name=value`.
 */
export function parseOptions(text: string): ParsedOptions {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '\\' && i + 1 < text.length) {
      word += text[++i];
      inWord = true;
    } else if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (inWord) words.push(word);

  const settings: { name: string; value: string }[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    let assignment: string | undefined;
    if (w === '-c') assignment = words[++i];
    else if (w.startsWith('-c')) assignment = w.slice(2);
    else if (w.startsWith('--')) assignment = w.slice(2);
    if (assignment === undefined) return { ok: false, message: `only "-c name=value" settings are allowed in options, not "${w}"` };
    const eq = assignment.indexOf('=');
    if (eq <= 0) return { ok: false, message: `option "${assignment}" must be name=value` };
    // The server treats '-' in a setting name given this way as '_' (ParseLongOption).
    settings.push({ name: assignment.slice(0, eq).replace(/-/g, '_'), value: assignment.slice(eq + 1) });
  }
  return { ok: true, settings };
}

function escapeOption(word: string): string {
  return word.replace(/[\\\s]/g, (c) => `\\${c}`);
}
