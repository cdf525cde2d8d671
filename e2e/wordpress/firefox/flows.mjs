// The WordPress plugin's login and logout flows in Firefox ESR, driven by
// puppeteer-core over WebDriver BiDi with Debian's firefox-esr (no browser
// download). Run by TestWordPress_Firefox (../firefox_test.go):
//
//   node flows.mjs '{"firefox": "/usr/bin/firefox-esr", "sites": [A, B, C],
//                    "login": "fay", "pass": "…", "email": "fay@example.com"}'
//
// Firefox's default cookie policy (Total Cookie Protection) is kept: the
// chain's top-level redirects must work with it. Prints one JSON line:
// {"ok": true, "steps": [...]} or {"ok": false, "step": "...", "error": "..."}.
import puppeteer from 'puppeteer-core';

const cfg = JSON.parse(process.argv[2]);
const [a, b, c] = cfg.sites;
const steps = [];
const waitMs = 20000;

async function shown(page) {
  return page.evaluate(() => ({
    href: location.href,
    user: (document.body && document.body.dataset.user) || '',
    site: (document.body && document.body.dataset.site) || '',
  }));
}

// visit opens url (again at each try, as F5 would) until it shows user.
async function visit(page, url, user) {
  const until = Date.now() + waitMs;
  let last;
  for (;;) {
    await page.goto(url, { waitUntil: 'load' });
    last = await shown(page);
    if (last.href.startsWith(url) && last.site !== '' && last.user === user) {
      steps.push(`${url} shows "${user}"`);
      return;
    }
    if (Date.now() > until) {
      throw new Error(`${url} never showed "${user}": last ${JSON.stringify(last)}`);
    }
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

let step = 'launch Firefox';
let browser;
try {
  browser = await puppeteer.launch({ browser: 'firefox', executablePath: cfg.firefox, headless: true });
  const page = await browser.newPage();

  step = 'log in on A through wp-login.php';
  await page.goto(`${a}wp-login.php?redirect_to=${encodeURIComponent(a)}`, { waitUntil: 'load' });
  await page.waitForSelector('#user_login');
  await page.evaluate((login, pass) => {
    document.getElementById('user_login').value = login;
    document.getElementById('user_pass').value = pass;
  }, cfg.login, cfg.pass);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#wp-submit')]);
  const until = Date.now() + waitMs;
  for (;;) {
    const s = await shown(page);
    if (s.href.startsWith(a) && s.user === cfg.email) break;
    if (Date.now() > until) throw new Error(`the login did not come back to A logged in: ${JSON.stringify(s)}`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
  steps.push('logged in on A');

  step = 'B and C show the user';
  await visit(page, b, cfg.email);
  await visit(page, c, cfg.email);

  step = 'a plain wp_logout() on B';
  await page.goto(`${b}?e2e=logout`, { waitUntil: 'load' });
  step = 'A and C logged out on their next page view';
  await visit(page, a, '');
  await visit(page, c, '');
  console.log(JSON.stringify({ ok: true, steps }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, step, error: String(err && err.stack || err), steps }));
} finally {
  if (browser) await browser.close().catch(() => {});
}
