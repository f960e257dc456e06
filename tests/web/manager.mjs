// Drives the web manager in Debian's Chromium, as an operator would, for
// tests/all/web.rs: `node manager.mjs <scenario>` with SWITCHYARD_WEB (JSON: base URL,
// users, files, screenshot folder) set. Every step waits for what it names to show on
// the page (bounded by Playwright's timeouts) and fails the run when it does not; the
// process exits non-zero with the reason. Screenshots of each page go to `shots`.
import { chromium } from 'playwright-core';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';

const env = JSON.parse(process.env.SWITCHYARD_WEB);
const STEP_MS = 30_000;

async function browser() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    // Root needs --no-sandbox; the rest keep Chromium off the (closed) network.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
}

async function newPage(b) {
  const context = await b.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on('pageerror', (e) => { console.error(`page error: ${e.message}`); process.exitCode = 1; });
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: `${env.shots}/${name}.png`, fullPage: true });
}

async function login(page, name, password) {
  await page.goto(`${env.base}/`);
  await page.fill('#login input[name=name]', name);
  await page.fill('#login input[name=password]', password);
  await page.click('#login button[type=submit]');
}

async function text(page, selector) {
  return (await page.textContent(selector)).trim();
}

/** Wait (at most STEP_MS) until the element's text satisfies `ok`, checked here, not in
 * the page: the page's CSP rightly forbids evaluating strings. */
async function until(page, selector, ok, what) {
  const deadline = Date.now() + STEP_MS;
  let seen = '(absent)';
  for (;;) {
    const el = await page.$(selector);
    seen = el ? (await el.textContent().catch(() => '(detached)')).trim() : '(absent)';
    if (el && ok(seen)) return seen;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${STEP_MS} ms; last seen ${JSON.stringify(seen)}`);
    await page.waitForTimeout(100);
  }
}

const scenarios = {
  // Wrong passwords are refused with the reason; after the configured failures the
  // source is locked out, the right password included.
  async lockout() {
    const b = await browser();
    const page = await newPage(b);
    for (let i = 1; i < env.max_failures; i++) {
      await login(page, 'admin', `wrong-${i}`);
      await until(page, '#login-error', (t) => t === 'wrong user name or password', `failure ${i} is refused`);
      await page.evaluate(() => { document.getElementById('login-error').textContent = ''; });
    }
    await login(page, 'admin', 'wrong-last');
    await until(page, '#login-error', (t) => t.startsWith('too many bad credentials'), 'the last failure locks out');
    await shot(page, 'login-locked-out');
    await page.evaluate(() => { document.getElementById('login-error').textContent = ''; });
    await login(page, 'admin', env.admin_password);
    await until(page, '#login-error', (t) => t.startsWith('too many bad credentials'), 'locked out even with the right password');
    await b.close();
  },

  // The operator's tour while SIPp calls run: the dashboard's numbers move, a call is
  // hung up, the records are searched and downloaded, a call's ladder is drawn.
  async calls() {
    const b = await browser();
    const page = await newPage(b);
    await page.goto(`${env.base}/`);
    await shot(page, 'login');
    await login(page, 'admin', env.admin_password);
    await page.waitForSelector('#calls-active');
    await until(page, '#calls-active', (t) => Number(t) >= 1, 'the dashboard shows calls in progress');
    await until(page, '#cps', (t) => Number(t) > 0, 'the dashboard shows calls offered per second');
    await until(page, '#decisions-rate', (t) => Number(t) > 0, 'the dashboard shows module decisions per second');
    await shot(page, 'dashboard-during-calls');

    await page.click('#nav-calls');
    await page.waitForSelector('#live-calls button.hangup');
    const target = await page.getAttribute('#live-calls tr[data-call]:has(button.hangup)', 'data-call');
    await shot(page, 'current-calls');
    await page.click(`#live-calls tr[data-call="${target}"] button.hangup`);
    await page.waitForSelector(`#live-calls tr[data-call="${target}"]`, { state: 'detached' });
    console.log(`hung up ${target}`);

    await page.click('#nav-dashboard');
    await until(page, '#calls-active', (t) => t === '0', 'the dashboard shows the calls ended');
    await until(page, '#income', (t) => Number(t) > 0, "the dashboard shows today's income");
    await until(page, '#asr', (t) => t === '100.0%', 'the ended calls were all answered');
    await shot(page, 'dashboard-after-calls');

    await page.click('#nav-cdrs');
    await page.waitForSelector('#cdr-table');
    await page.fill('#cdr-search input[name=callee]', env.callee);
    await page.fill('#cdr-search input[name=limit]', String(env.page_size));
    await page.click('#cdr-search button[type=submit]');
    await until(page, '#cdr-count', (t) => t === `${env.page_size} records`, 'a full first page is listed');
    const firstPage = await page.$$eval('#cdr-table tbody a.cdr-link', (as) => as.map((a) => a.textContent));
    assert.equal(firstPage.length, env.page_size, 'a full first page');
    await page.click('#cdr-next');
    await page.waitForFunction((first) => {
      const ids = [...document.querySelectorAll('#cdr-table tbody a.cdr-link')].map((a) => a.textContent);
      return ids.length > 0 && !ids.includes(first);
    }, firstPage[0]);
    const secondPage = await page.$$eval('#cdr-table tbody a.cdr-link', (as) => as.map((a) => a.textContent));
    assert.equal(firstPage.length + secondPage.length, env.calls, 'the two pages hold every call');
    await shot(page, 'call-records');
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#cdr-csv')]);
    const csv = readFileSync(await download.path(), 'utf8');
    const lines = csv.trim().split('\n');
    assert.ok(lines[0].startsWith('call_id,account,'), `CSV header: ${lines[0]}`);
    const callRows = lines.slice(1).filter((l) => l.split(',').at(-4) === 'call');
    assert.equal(callRows.length, secondPage.length, 'the CSV holds the page shown');

    await page.goto(`${env.base}/manager/#/call/${encodeURIComponent(target)}`);
    await until(page, '#call-fields', (t) => t.includes('operator_hangup'), 'the hung-up call says so');
    await page.waitForSelector('#ladder text.msg');
    const labels = await page.$$eval('#ladder text.msg', (ts) => ts.map((t) => t.textContent));
    for (const want of ['INVITE', '200 OK', 'ACK', 'BYE']) {
      assert.ok(labels.some((l) => l.startsWith(want)), `the ladder shows ${want}: ${labels}`);
    }
    await page.click('#ladder text.msg');
    await until(page, '#ladder-message', (t) => t.includes('Call-ID'), 'a message opens');
    await shot(page, 'call-ladder');

    // acme's balance and credit are under the test's 1,000 threshold: the monitor says so.
    await page.goto(`${env.base}/manager/#/alarms`);
    await page.waitForSelector('#alarms-active tr[data-kind="low_balance"][data-subject="acme"]', { timeout: STEP_MS });
    await shot(page, 'alarms');
    await b.close();
  },

  // Upload two versions of a module, bind the first, move a canary to the second,
  // roll back, and simulate a call, all through the forms.
  async modules() {
    const b = await browser();
    const page = await newPage(b);
    await login(page, 'admin', env.admin_password);
    await page.click('#nav-modules');
    for (const [file, version] of [[env.module_a, env.version_a], [env.module_b, env.version_b]]) {
      await page.fill('#upload-form input[name=name]', 'ui-router');
      await page.setInputFiles('#upload-form input[name=file]', file);
      await page.fill('#upload-form input[name=description]', 'uploaded from the manager');
      await page.click('#upload-form button[type=submit]');
      await until(page, '#module-note', (t) => t.startsWith('Uploaded version'), 'the upload is accepted');
      await page.waitForSelector(`#module-versions tr[data-version="${version}"]`);
    }
    const bind = async (canary) => {
      await page.fill('#bind-form input[name=scope]', env.scope);
      await page.fill('#bind-form input[name=module]', 'ui-router');
      await page.fill('#bind-form input[name=version]', env.version_a);
      await page.fill('#bind-form input[name=canary_version]', canary ? env.version_b : '');
      await page.fill('#canary-percent', canary ? '30' : '0');
      await page.click('#bind-form button[type=submit]');
      await until(page, '#module-note', (t) => t === 'Bound.', 'the binding is accepted');
    };
    await bind(false);
    await page.waitForSelector(`#bindings tr[data-scope="${env.scope}"]`);
    await bind(true);
    await until(page, `#bindings tr[data-scope="${env.scope}"]`, (t) => t.includes('at 30%'), 'the canary shows at 30%');
    await shot(page, 'modules-canary');
    await page.click(`#bindings tr[data-scope="${env.scope}"] button.rollback`);
    await until(page, '#module-note', (t) => t === 'Rolled back.', 'the rollback is accepted');
    await until(page, `#bindings tr[data-scope="${env.scope}"]`, (t) => !t.includes('at 30%'), 'the canary is gone after rollback');
    // A refusal shows the API's reason.
    await page.fill('#bind-form input[name=version]', 'no-such-version');
    await page.fill('#bind-form input[name=canary_version]', '');
    await page.click('#bind-form button[type=submit]');
    await until(page, '#module-note', (t) => t.includes('does not exist'), "a bad binding shows the API's reason");
    await page.fill('#simulate-form input[name=module]', 'ui-router');
    await page.fill('#simulate-form input[name=version]', env.version_a);
    await page.fill('#simulate-form textarea[name=call]', JSON.stringify(env.simulate_call));
    await page.click('#simulate-form button[type=submit]');
    await until(page, '#sim-out', (t) => t.includes('"answer"') && t.includes('"elapsed_us"'), 'the simulation answers');
    const sim = JSON.parse(await text(page, '#sim-out'));
    assert.equal(sim.failure, null, `simulation failed: ${JSON.stringify(sim)}`);
    await shot(page, 'modules-simulated');
    await b.close();
  },

  // The admin makes a tenant user in the manager; the tenant sees only its own.
  async tenant() {
    const b = await browser();
    const page = await newPage(b);
    await login(page, 'admin', env.admin_password);
    await page.click('#nav-users');
    await page.fill('#user-form input[name=name]', env.tenant_user);
    await page.fill('#user-form input[name=password]', env.tenant_password);
    await page.selectOption('#user-form select[name=role]', 'tenant');
    await page.fill('#user-form input[name=tenant]', env.tenant);
    await page.click('#user-form button[type=submit]');
    await until(page, '#users', (t) => t.includes(env.tenant_user), 'the user is listed');
    await shot(page, 'users');
    await page.click('#logout');
    await page.waitForSelector('#login');

    await login(page, env.tenant_user, env.tenant_password);
    await page.waitForSelector('#calls-active');
    assert.equal(await page.$('#nav-users'), null, 'a tenant has no users page');
    await page.click('#nav-carrier');
    await page.waitForSelector('#objects');
    const ids = await page.$$eval('#objects tr[data-id]', (rows) => rows.map((r) => r.dataset.id));
    assert.deepEqual(ids, [env.tenant_account], 'the tenant lists only its own accounts');
    await shot(page, 'tenant-accounts');
    await page.click('#nav-cdrs');
    await until(page, '#cdr-count', (t) => t === '0 records', "the tenant sees none of the other tenant's calls");
    // The page's own session cannot reach another tenant's objects either.
    const status = await page.evaluate(async (id) => (await fetch(`/api/v1/accounts/${id}`)).status, env.other_account);
    assert.equal(status, 404, "another tenant's account answers as if it did not exist");
    const csrf = await page.evaluate(async () => (await fetch('/api/v1/accounts/x', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{}' })).status);
    assert.equal(csrf, 403, 'a change without the CSRF token is refused');
    await page.click('#nav-audit');
    await page.waitForSelector('#audit');
    await shot(page, 'tenant-audit');
    await b.close();
  },
};

const name = process.argv[2];
if (!scenarios[name]) {
  console.error(`no scenario ${name}: one of ${Object.keys(scenarios)}`);
  process.exit(2);
}
try {
  await scenarios[name]();
  console.log(`${name}: ok`);
} catch (e) {
  console.error(`${name}: ${e.stack || e}`);
  process.exit(1);
}
