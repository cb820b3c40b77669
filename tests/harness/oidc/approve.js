// approve.js - plays the user at the browser for a device login (RFC 8628):
// opens the verification URI, enters the user code, signs in (any login,
// the provider's development interactions) and consents, or denies.
//
//   node approve.js VERIFICATION_URI USER_CODE [approve|deny] [LOGIN]
//
// Exits 0 when the provider shows its success page (approve) or the aborted
// message (deny); 1 with a message otherwise.
const [uri, userCode, action = 'approve', login = 'alice'] = process.argv.slice(2);
if (!uri || !userCode || !['approve', 'deny'].includes(action)) {
  console.error('usage: node approve.js VERIFICATION_URI USER_CODE [approve|deny] [LOGIN]');
  process.exit(2);
}

const jar = new Map();
function saveCookies(res) {
  // getSetCookie() is recent (node 18.14+); older ones join the headers with
  // ", ", which also occurs inside Expires=: split only before "name="
  const all = typeof res.headers.getSetCookie === 'function'
    ? res.headers.getSetCookie()
    : (res.headers.get('set-cookie') || '').split(/,(?=\s*[^;,=\s]+=)/).filter(Boolean);
  for (const c of all) {
    const [pair] = c.split(';');
    const eq = pair.indexOf('=');
    jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1));
  }
}
const cookieHeader = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');

// GET or POST, following redirects by hand so cookies are kept.
async function go(url, form) {
  let method = form ? 'POST' : 'GET';
  let body = form ? new URLSearchParams(form).toString() : undefined;
  for (let hops = 0; hops < 20; hops++) {
    const headers = { cookie: cookieHeader() };
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method, body, headers, redirect: 'manual' });
    saveCookies(res);
    if (res.status >= 300 && res.status < 400 && res.headers.get('location')) {
      url = new URL(res.headers.get('location'), url).toString();
      method = 'GET';
      body = undefined;
      continue;
    }
    return { url, status: res.status, html: await res.text() };
  }
  throw new Error('too many redirects');
}

// The first <form> of a page: its action and its named inputs' values.
function parseForm(page) {
  const m = page.html.match(/<form[^>]*>[\s\S]*?<\/form>/i);
  if (!m) return null;
  const action = (m[0].match(/action="([^"]*)"/i) || [])[1] || page.url;
  const fields = {};
  for (const inp of m[0].matchAll(/<input[^>]*>/gi)) {
    const name = (inp[0].match(/name="([^"]*)"/i) || [])[1];
    if (name) fields[name] = (inp[0].match(/value="([^"]*)"/i) || [])[1] || '';
  }
  return { action: new URL(action.replace(/&amp;/g, '&'), page.url).toString(), fields };
}

async function main() {
  let page = await go(uri);
  for (let step = 0; step < 10; step++) {
    if (/Sign-in Success/i.test(page.html)) {
      if (action !== 'approve') throw new Error('login succeeded although denied');
      console.log('approved');
      return;
    }
    if (/interrupted|aborted|access_denied/i.test(page.html) && action === 'deny') {
      console.log('denied');
      return;
    }
    const form = parseForm(page);
    if (!form) throw new Error(`no form on ${page.url} (HTTP ${page.status}): ${page.html.slice(0, 300)}`);
    const f = form.fields;
    if ('user_code' in f && !('confirm' in f) && !f.user_code) {
      f.user_code = userCode;
    } else if ('user_code' in f) {
      // the confirmation page: "is this the code on your device?"
      if (action === 'deny') f.abort = 'yes'; else f.confirm = 'yes';
    } else if (f.prompt === 'login') {
      f.login = login;
      f.password = 'any';
    } else if (f.prompt !== 'consent') {
      throw new Error(`unexpected form on ${page.url}`);
    }
    page = await go(form.action, f);
    if (page.status >= 400 && !/interrupted|aborted/i.test(page.html))
      throw new Error(`HTTP ${page.status} on ${page.url}: ${page.html.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').slice(0, 300)}`);
  }
  throw new Error('the login did not finish');
}

main().catch((e) => { console.error(`approve.js: ${e.message}`); process.exit(1); });
