// A small executable the demo leaves in its temp folder: `<dir>/token EMAIL` prints a fresh access
// token for EMAIL from the development issuer, so a pasted psql command can outlive its printed token.
import { chmod, writeFile } from 'node:fs/promises';

export interface TokenScriptOptions {
  /** Where to write it (inside the demo's temp folder; removed with it). */
  path: string;
  /** Issuer base URL, e.g. `https://127.0.0.1:41234`. */
  issuer: string;
  /** The issuer's minting client (client_credentials, development only). */
  clientId: string;
  clientSecret: string;
  /** Token endpoint form fields beyond grant_type; `{email}` in a value is replaced by the argument. */
  form: Record<string, string>;
  /** PEM CA that signed the issuer's certificate. */
  ca: string;
  /** The node binary for the `#!` line. */
  nodePath: string;
}

/** Writes the script (mode 0700: it holds the minting client's secret). */
export async function writeTokenScript(opts: TokenScriptOptions): Promise<void> {
  // RFC 6749 §2.3.1: client_id and secret are form-urlencoded before being joined for Basic auth.
  const basic = `Basic ${Buffer.from(`${encodeURIComponent(opts.clientId)}:${encodeURIComponent(opts.clientSecret)}`).toString('base64')}`;
  const config = { tokenUrl: `${opts.issuer}/token`, basic, form: opts.form, ca: opts.ca };
  // A `#!` line cannot hold spaces; env finds node on PATH then.
  const shebang = /\s/.test(opts.nodePath) ? '#!/usr/bin/env node' : `#!${opts.nodePath}`;
  const script = `${shebang}
// rolegate demo: prints a fresh access token for EMAIL from the demo's development issuer.
// Development only; removed when the demo stops. Usage: token EMAIL
'use strict';
const https = require('node:https');
const config = ${JSON.stringify(config)};
const email = process.argv[2];
if (!email) {
  process.stderr.write('usage: token EMAIL\\n');
  process.exit(2);
}
const form = { grant_type: 'client_credentials' };
for (const [k, v] of Object.entries(config.form)) form[k] = v.split('{email}').join(email);
const req = https.request(config.tokenUrl, {
  method: 'POST',
  ca: config.ca,
  timeout: 10000,
  headers: { authorization: config.basic, accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded' },
}, (res) => {
  let text = '';
  res.setEncoding('utf8');
  res.on('data', (c) => { text += c; });
  res.on('end', () => {
    let body = {};
    try { body = JSON.parse(text); } catch {}
    if (res.statusCode !== 200 || typeof body.access_token !== 'string') {
      process.stderr.write('token: the demo issuer answered ' + res.statusCode + ' ' + (body.error_description || body.error || '') + '\\n');
      process.exit(1);
    }
    process.stdout.write(body.access_token + '\\n');
  });
});
req.on('timeout', () => req.destroy(new Error('timed out')));
req.on('error', (err) => {
  process.stderr.write('token: ' + err.message + ' (is rolegate demo still running?)\\n');
  process.exit(1);
});
req.end(new URLSearchParams(form).toString());
`;
  await writeFile(opts.path, script, { mode: 0o700 });
  await chmod(opts.path, 0o700);
}
