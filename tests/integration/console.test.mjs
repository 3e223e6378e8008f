// The console in a real browser (contract §15): Debian's Chromium driven by playwright-core
// against the worker in workerd with FRONTEND_URL unset, so every redirect lands on the
// console. A person signs in through the GitHub fake, connects Gmail through the Google
// fake's OAuth and watches the first sync finish, searches, creates and revokes an API token,
// sets up Telegram and sees the pairing code, redeems a Slack link, and signs out. Each step
// saves a screenshot (console-screenshots/, not committed); no page may show a CSP violation,
// a script error or a raw JSON envelope. Measured: the first page's load time and the bundle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGitHubOn } from '../lib/fake-github.mjs';
import { startFakeGoogle } from '../lib/fake-google.mjs';
import { addGmail, rawMessage } from '../lib/fake-gmail.mjs';
import { startFakeTelegram } from '../lib/fake-telegram.mjs';
import { startFakeSlack, sign } from '../lib/fake-slack.mjs';
import { startFake } from '../lib/fake-upstream.mjs';
import { CHROMIUM } from '../../scripts/setup.mjs';
import { root } from '../../scripts/lib.mjs';

const SHOTS = join(root, 'console-screenshots');
const MAILBOX = 'ada.mail@gmail.test';
const BOT = '123456789:AAconsole-test-bot-token-0123456789abc';
const SLACK_BOT = 'xoxb-3333333333-4444444444-consoleSlackBotToken';
const SIGNING = 'slack-signing-secret-for-the-console';

test('the console in a browser', async (t) => {
  const gh = startFakeGitHubOn(await startFake(t, 'github'));
  const g = await startFakeGoogle(t);
  const mail = addGmail(g);
  const tg = await startFakeTelegram(t);
  tg.addBot(BOT, 123456789, 'ada_agent_bot');
  knownSecrets.add(BOT);
  const slack = await startFakeSlack(t);
  slack.consentInstall = { token: SLACK_BOT, team: 'T0CONSOLE', teamName: 'Analytical Engines' };
  slack.addUser('UADA', { displayName: 'ada', realName: 'Ada L.' });
  knownSecrets.add(SLACK_BOT);
  const svc = await startService(t, {
    console: true,
    upstreams: { github: gh.api, githubWeb: gh.web, telegram: tg.url, slack: slack.url, slackOauth: `${slack.url}/oauth/v2/authorize` },
    vars: {
      FRONTEND_URL: undefined, GITHUB_CLIENT_ID: 'gh-client-id', GITHUB_CLIENT_SECRET: 'gh-client-secret', ...g.vars(),
      SLACK_CLIENT_ID: '1234.5678', SLACK_CLIENT_SECRET: 'slack-client-secret-for-tests', SLACK_SIGNING_SECRET: SIGNING,
    },
  });
  // Ada's GitHub account (she signs in with it) and her Gmail mailbox.
  gh.consentToken = 'gho_console_ada_0123456789abcdefghij';
  knownSecrets.add(gh.consentToken);
  gh.addUser(gh.consentToken, { id: 4242, login: 'ada', name: 'Ada Lovelace', email: 'ada@example.com' });
  g.consentEmail = MAILBOX;
  for (let i = 0; i < 24; i++) {
    await mail.addMessage(MAILBOX, { raw: rawMessage({ to: MAILBOX, subject: `Weekly notes ${i}`, text: `Notes number ${i}` }), internalDate: Date.UTC(2026, 9, 1) + i * 60000 });
  }
  await mail.addMessage(MAILBOX, { raw: rawMessage({ to: MAILBOX, from: 'Billing <billing@vendor.test>', subject: 'Quarterly invoice from Vendor', text: 'Your quarterly invoice is attached: 1,200 EUR due in 30 days.' }), internalDate: Date.UTC(2026, 9, 2) });

  mkdirSync(SHOTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  t.after(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const problems = [];
  page.on('pageerror', (e) => problems.push(`script error: ${e.message}`));
  page.on('console', (m) => {
    // A request's 4xx is logged by Chromium as "Failed to load resource"; the page shows those
    // in words (asserted below). Anything else at error level is a problem.
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  let shot = 0;
  const screenshot = async (name) => page.screenshot({ path: join(SHOTS, `${String(++shot).padStart(2, '0')}-${name}.png`), fullPage: true });
  /** No page shows an error envelope as text. */
  const noRawJson = async () => {
    const text = await page.locator('body').innerText();
    assert.doesNotMatch(text, /\{\s*"(error|code)"\s*:/, 'a raw JSON envelope on the page');
  };
  const heading = (name) => page.getByRole('heading', { level: 1, name, exact: true });
  /** A step of the walk; a failing one leaves a screenshot of what the page showed. */
  const step = (name, fn) => t.test(name, async () => {
    try {
      await fn();
    } catch (e) {
      await page.screenshot({ path: join(SHOTS, `failed-${name.replace(/\W+/g, '-').slice(0, 40)}.png`), fullPage: true }).catch(() => {});
      throw e;
    }
  });

  await step('the first page: sign-in, with the CSP and no third-party origin', async () => {
    const t0 = Date.now();
    const first = await page.goto(`${svc.url}/console`);
    await page.getByRole('link', { name: 'Continue with GitHub' }).waitFor();
    const loadMs = Date.now() - t0;
    const nav = await page.evaluate(() => performance.getEntriesByType('navigation')[0].toJSON());
    assert.equal(new URL(page.url()).pathname, '/login', 'not signed in: the console sends you to sign in');
    assert.match(first.headers()['content-security-policy'], /default-src 'self'/);
    const requests = await page.evaluate(() => performance.getEntriesByType('resource').map((r) => r.name));
    assert.ok(requests.every((u) => u.startsWith(svc.url)), `only this origin: ${requests}`);
    const dist = join(root, 'console', 'dist', 'assets');
    const gz = readdirSync(dist).reduce((n, f) => n + gzipSync(readFileSync(join(dist, f)), { level: 9 }).length, 0);
    t.diagnostic(`first page (sign-in) ready in ${loadMs} ms (DOMContentLoaded ${Math.round(nav.domContentLoadedEventEnd)} ms, load ${Math.round(nav.loadEventEnd)} ms); bundle ${(gz / 1024).toFixed(1)} KiB gzip (JS + CSS)`);
    console.log(`# console: first page ready in ${loadMs} ms; bundle ${(gz / 1024).toFixed(1)} KiB gzip`);
    // Both providers are configured here, so both are offered.
    assert.equal(await page.getByRole('link', { name: 'Continue with Google' }).count(), 1);
    await screenshot('sign-in');
  });

  await step('a wrong API token is refused in words, next to its field', async () => {
    await page.getByLabel('API token').fill('not-a-real-token');
    await page.getByRole('button', { name: 'Sign in with the token' }).click();
    await page.getByText('Not a valid API token').waitFor();
    assert.equal(await page.getByLabel('API token').getAttribute('aria-invalid'), 'true');
    await noRawJson();
  });

  let sessionToken;
  await step('sign in through GitHub: the redirect lands on the console, which exchanges the code', async () => {
    await page.getByRole('link', { name: 'Continue with GitHub' }).click();
    await heading('Integrations').waitFor();
    assert.match(new URL(page.url()).pathname, /^\/console(\/integrations)?$/);
    await page.getByText('Ada Lovelace').waitFor();
    sessionToken = await page.evaluate(() => localStorage.getItem('console.token'));
    knownSecrets.add(sessionToken);
    assert.equal((await svc.request('GET', '/api/me', { token: sessionToken })).body.user.role, 'admin', 'the first user is the admin');
    await page.getByText('Nothing is connected yet').waitFor();
    await screenshot('integrations-empty');
  });

  let integrationId;
  await step('connect Gmail through Google\'s OAuth and watch the first sync finish', async () => {
    // Gmail answers the first list of messages slowly, so the run is seen while it works.
    g.fake.fault(/\/gmail\/v1\/users\/me\/messages$/, { delayMs: 1500 }, 1);
    await page.getByRole('button', { name: 'Connect Gmail' }).click();
    await heading('Gmail').waitFor();
    integrationId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
    // Live progress while it runs, then the result and the run in the history.
    await page.getByRole('status').filter({ hasText: /Syncing|Waiting for the sync|Starting the sync/ }).waitFor();
    assert.equal(await page.getByRole('progressbar', { name: 'Sync progress' }).count(), 1);
    await screenshot('gmail-syncing');
    await page.getByText(/Sync finished: \d+ records/).waitFor({ timeout: 30_000 });
    await page.getByRole('cell', { name: 'completed' }).waitFor();
    const items = await page.locator('dl.facts dt:has-text("Items stored") + dd').innerText();
    assert.ok(Number(items.replace(/\D/g, '')) >= 25, `items stored: ${items}`);
    const history = await svc.request('GET', `/api/integrations/${integrationId}/syncs`, { token: sessionToken });
    assert.equal(history.body.syncs[0].status, 'completed');
    await noRawJson();
    await screenshot('gmail-synced');
  });

  await step('search across integrations', async () => {
    await page.getByRole('link', { name: 'Search' }).click();
    await heading('Search').waitFor();
    await page.getByRole('searchbox', { name: 'Search for' }).fill('quarterly invoice');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    // The message and its thread (threads keep their subject, so both are found).
    const hits = page.getByRole('heading', { name: 'Quarterly invoice from Vendor' });
    await hits.first().waitFor();
    assert.equal(await hits.count(), 2);
    await page.getByText(/· messages ·/).first().waitFor();
    await page.getByText(/· threads ·/).first().waitFor();
    assert.ok(await page.locator('.snippet mark').count() > 0, 'matches are marked');
    await page.getByRole('searchbox', { name: 'Search for' }).fill('zebra-nothing-matches');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.getByText('Nothing matches “zebra-nothing-matches”').waitFor();
    await page.getByRole('searchbox', { name: 'Search for' }).fill('quarterly invoice');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.getByRole('heading', { name: 'Quarterly invoice from Vendor' }).first().waitFor();
    await screenshot('search');
  });

  await step('create an API token (shown once), then revoke it', async () => {
    await page.getByRole('link', { name: 'API tokens' }).click();
    await heading('API tokens').waitFor();
    await page.getByLabel('Name (what will use it)').fill('laptop agent');
    await page.getByRole('button', { name: 'Create token' }).click();
    const token = await page.getByTestId('new-token').innerText();
    svc.shownOnce(token);
    assert.equal((await svc.request('GET', '/api/me', { token })).status, 200, 'the new token works');
    await page.getByRole('cell', { name: 'laptop agent' }).waitFor();
    await screenshot('token-created');
    const row = page.getByRole('row', { name: /laptop agent/ });
    await row.getByRole('button', { name: 'Revoke' }).click();
    await row.getByRole('button', { name: 'Yes, revoke' }).click();
    await page.getByText('Revoked “laptop agent”').waitFor();
    assert.equal(await page.getByTestId('new-token').count(), 0, 'the revoked token is no longer shown');
    assert.equal((await svc.request('GET', '/api/me', { token })).status, 401, 'the revoked token stops working');
  });

  await step('Telegram: a malformed token is explained; a real one gives the pairing code and link', async () => {
    await page.getByRole('link', { name: 'Telegram' }).click();
    await heading('Telegram').waitFor();
    await page.getByLabel('Bot token').fill('not a bot token');
    await page.getByRole('button', { name: 'Connect the bot' }).click();
    await page.locator('.field.invalid .field-error').waitFor();
    await noRawJson();
    await page.getByLabel('Bot token').fill(BOT);
    await page.getByRole('button', { name: 'Connect the bot' }).click();
    const code = (await page.getByTestId('pairing-code').innerText()).replace('/start ', '');
    svc.shownOnce(code, 2);
    assert.match(code, /^[A-Za-z0-9_-]{6,}$/);
    const link = await page.getByRole('link', { name: 'Open @ada_agent_bot in Telegram' }).getAttribute('href');
    assert.equal(link, `https://t.me/ada_agent_bot?start=${code}`);
    assert.equal(tg.webhooks.get(BOT)?.url?.startsWith(svc.url), true, 'the bot\'s webhook points at this service');
    await screenshot('telegram-pairing');
  });

  await step('an admin adds the Slack app to a workspace', async () => {
    await page.getByRole('link', { name: 'Slack workspaces' }).click();
    await heading('Slack workspaces').waitFor();
    await page.getByText('The app is not installed in any workspace yet.').waitFor();
    await page.getByRole('button', { name: 'Add to a Slack workspace' }).click();
    await page.getByText('Installed in workspace T0CONSOLE.').waitFor();
    await page.getByRole('heading', { name: 'Analytical Engines' }).waitFor();
  });

  await step('redeem a Slack link: the app\'s link lands on the console, which asks before linking', async () => {
    // An unlinked person writes to the app; its answer carries the one-time link.
    const raw = JSON.stringify({
      token: 'x', team_id: 'T0CONSOLE', api_app_id: 'A1', type: 'event_callback', event_id: 'EvConsole1', event_time: 1700000000,
      event: { type: 'message', channel_type: 'im', channel: 'DADA', user: 'UADA', text: 'hello', ts: '1700000001.000100', event_ts: '1700000001.000100' },
    });
    const delivered = await svc.request('POST', '/slack/events', { raw, headers: { 'content-type': 'application/json', ...sign(SIGNING, raw) } });
    assert.equal(delivered.status, 200);
    const t0 = Date.now();
    while (slack.messagesIn('DADA').length === 0 && Date.now() - t0 < 15_000) await new Promise((r) => setTimeout(r, 50));
    const link = /<([^|>]+\/slack\/link#code=[^|>]+)\|/.exec(slack.messagesIn('DADA')[0]?.text ?? '')?.[1];
    assert.ok(link?.startsWith(`${svc.url}/slack/link#code=`), `the link points at this console: ${link}`);
    svc.shownOnce(new URL(link).hash.slice(6));
    await page.goto(link);
    await heading('Link your Slack account').waitFor();
    await page.waitForFunction(() => location.hash === ''); // the code leaves the address bar
    await page.getByRole('button', { name: 'Link my Slack account' }).click();
    await page.getByText(/^Linked\. Messages from/).waitFor();
    const links = await svc.request('GET', '/api/me/slack', { token: sessionToken });
    assert.deepEqual(links.body.links.map((l) => [l.teamId, l.slackUserId]), [['T0CONSOLE', 'UADA']]);
    await screenshot('slack-linked');
    // The same link again (a fresh page load): used up, said in words.
    await page.goto('about:blank');
    await page.goto(link);
    await page.getByRole('button', { name: 'Link my Slack account' }).click();
    await page.getByText('This link expired or was already used').waitFor();
    await noRawJson();
  });

  await step('MCP: the server URL, an authorized client (its scopes) and revoking it', async () => {
    // A client Ada authorized through OAuth (its grant arranged in D1 as the token endpoint writes it).
    const db = await svc.db();
    const { id: adaId } = await db.prepare("SELECT id FROM users WHERE email = 'ada@example.com'").first();
    const now = new Date().toISOString();
    const later = new Date(Date.now() + 3600_000).toISOString();
    await db.prepare("INSERT INTO mcp_clients (client_id, kind, client_name, redirect_uris, created_at) VALUES ('mcpc_console', 'registered', 'Desk Assistant', '[\"http://127.0.0.1/cb\"]', ?1)").bind(now).run();
    await db.prepare("INSERT INTO mcp_tokens (id, family_id, kind, token_hash, client_id, user_id, scope, audience, expires_at, created_at) VALUES ('t-console', 'f-console', 'access', 'hash-console', 'mcpc_console', ?1, 'mcp:read', ?2, ?3, ?4)")
      .bind(adaId, `${svc.url}/mcp`, later, now).run();
    await page.getByRole('link', { name: 'MCP' }).click();
    await heading('MCP').waitFor();
    assert.equal(await page.getByTestId('mcp-url').innerText(), `${svc.url}/mcp`);
    await page.getByText('Desk Assistant').waitFor();
    await page.getByText(/read only/).first().waitFor();
    await page.getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('button', { name: 'Yes, revoke' }).click();
    await page.getByText('No MCP client has been authorized through OAuth.').waitFor();
    const revoked = await db.prepare("SELECT revoked_at FROM mcp_tokens WHERE id = 't-console'").first();
    assert.ok(revoked.revoked_at, 'the grant was revoked');
    await noRawJson();
  });

  await step('every page opens with its heading, and no error, blank or raw envelope', async () => {
    const pages = [
      ['Channels', 'Channel bindings'], ['Slack', 'Slack'], ['Integrations', 'Integrations'], ['Invites', 'Invites'],
      ['Organization', 'Organization'], ['Model providers', 'Model providers'], ['Repositories', 'Repositories'],
      ['Webhook inbox', 'Webhook inbox'], ['Slack workspaces', 'Slack workspaces'], ['MCP', 'MCP'],
    ];
    for (const [link, title] of pages) {
      await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: link, exact: true }).click();
      await heading(title).waitFor();
      await page.waitForFunction(() => !document.querySelector('p.loading'));
      const errors = await page.locator('.error').allInnerTexts();
      assert.deepEqual(errors, [], `${title} shows an error`);
      await noRawJson();
      await page.screenshot({ path: join(SHOTS, `tour-${title.replace(/\W+/g, '-').toLowerCase()}.png`), fullPage: true });
    }
    // An invite: created, its link shown once, listed.
    await page.getByRole('link', { name: 'Invites', exact: true }).click();
    await page.getByLabel('Email (optional)').fill('grace@example.com');
    await page.getByRole('button', { name: 'Create invite' }).click();
    const inviteLink = await page.locator('.secret code').first().innerText();
    assert.match(inviteLink, new RegExp(`^${svc.url}/login\\?invite=inv_`));
    svc.shownOnce(new URL(inviteLink).searchParams.get('invite'), 0);
    await page.getByRole('cell', { name: 'grace@example.com' }).waitFor();
  });

  await step('on a phone: the navigation folds behind a menu button', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${svc.url}/console/integrations/${encodeURIComponent(integrationId)}`);
    await heading('Gmail').waitFor();
    assert.equal(await page.getByRole('navigation', { name: 'Console' }).isVisible(), false);
    await page.getByRole('button', { name: 'Menu' }).click();
    await page.getByRole('navigation', { name: 'Console' }).waitFor();
    await page.getByRole('button', { name: 'Menu' }).click();
    await screenshot('phone-integration');
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await step('sign out: the session ends, and the console is back at sign-in', async () => {
    await page.getByRole('link', { name: 'Sessions' }).click();
    await heading('Sign-in sessions').waitFor();
    await page.getByText('this browser').waitFor();
    await page.getByRole('button', { name: 'Sign out', exact: true }).first().click();
    await page.getByText('You are signed out.').waitFor();
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.equal(await page.evaluate(() => localStorage.getItem('console.token')), null);
    assert.equal((await svc.request('GET', '/api/me', { token: sessionToken })).status, 401, 'the session token is revoked');
    await screenshot('signed-out');
  });

  await step('no script errors or CSP violations on any page; no secret leaked', async () => {
    assert.deepEqual(problems, []);
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
