// Approves an RFC 8628 device authorization on the development issuer by driving its development-only
// pages (user code confirmation, login, consent) like a browser would, so that `rolegate login` can be
// tested and demonstrated without a person at a browser.

// The pages a device approval passes through, plus redirects; more than this means something is wrong.
const MAX_STEPS = 16;

interface HtmlForm {
  action: string;
  fields: URLSearchParams;
}

/**
 * Confirms `userCode` and logs in as `login` (the development login form accepts any name, which
 * becomes the account id and the token's `email`). Resolves when the issuer reports success.
 */
export async function approveDeviceCode(fetchFn: typeof fetch, issuer: string, userCode: string, login: string): Promise<void> {
  const jar = new Map<string, string>();
  const request = async (url: string, form?: URLSearchParams): Promise<Response> => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetchFn(url, {
      method: form === undefined ? 'GET' : 'POST',
      headers: cookie === '' ? {} : { cookie },
      ...(form === undefined ? {} : { body: form }),
      redirect: 'manual',
    });
    for (const line of res.headers.getSetCookie()) {
      const pair = line.split(';', 1)[0] ?? '';
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const value = pair.slice(eq + 1);
      if (value === '') jar.delete(pair.slice(0, eq));
      else jar.set(pair.slice(0, eq), value);
    }
    return res;
  };

  let res = await request(`${issuer}/device?user_code=${encodeURIComponent(userCode)}`);
  for (let step = 0; step < MAX_STEPS; step++) {
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location !== null) {
      await res.arrayBuffer();
      res = await request(new URL(location, issuer).href);
      continue;
    }
    const html = await res.text();
    if (res.status !== 200) throw new Error(`device approval: HTTP ${res.status} at step ${step}`);
    if (html.includes('Sign-in Success')) return;
    const form = firstForm(html, issuer, login);
    if (form === undefined) throw new Error(`device approval stopped at a page without a form (step ${step})`);
    res = await request(form.action, form.fields);
  }
  throw new Error('device approval did not finish');
}

// Enough HTML parsing for oidc-provider's development pages, which we control the version of.
function firstForm(html: string, base: string, login: string): HtmlForm | undefined {
  const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (form === null) return undefined;
  const action = /\baction="([^"]*)"/i.exec(form[1] ?? '')?.[1];
  if (action === undefined) return undefined;
  const body = form[2] ?? '';
  const fields = new URLSearchParams();
  for (const [tag] of body.matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(tag, 'name');
    if (name === undefined) continue;
    if (name === 'login') fields.set(name, login);
    else if (name === 'password') fields.set(name, 'development');
    else fields.set(name, attr(tag, 'value') ?? '');
  }
  for (const [tag] of body.matchAll(/<button\b[^>]*>/gi)) {
    const name = attr(tag, 'name');
    if (name !== undefined && name !== 'abort' && !fields.has(name)) fields.set(name, attr(tag, 'value') ?? '');
  }
  return { action: new URL(unescapeHtml(action), base).href, fields };
}

function attr(tag: string, name: string): string | undefined {
  const v = new RegExp(`\\b${name}="([^"]*)"`, 'i').exec(tag)?.[1];
  return v === undefined ? undefined : unescapeHtml(v);
}

function unescapeHtml(s: string): string {
  return s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}
