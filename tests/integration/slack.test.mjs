// Slack as a channel against a fake Slack Web API: the install round trip, signed event
// deliveries (built here with Node's crypto), deduplication, linking people with one-time
// codes, routing to the orchestrator and to bound threads, and replies in threads as mrkdwn.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeSlack, checkMrkdwn, sign, MESSAGE_LIMIT } from '../lib/fake-slack.mjs';

const SIGNING = 'slack-signing-secret-for-tests';
const BOT = 'xoxb-1111111111-2222222222-slackBotTokenForTests';
const TEAM = 'T0001';
const FRONTEND = 'https://app.example.com';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('Slack', async (t) => {
  const slack = await startFakeSlack(t);
  knownSecrets.add(BOT);
  const svc = await startService(t, {
    upstreams: { slack: slack.url, slackOauth: 'https://slack.example/oauth/v2/authorize' },
    vars: { PUBLIC_URL: 'https://svc.example.com', SLACK_CLIENT_ID: '1234.5678', SLACK_CLIENT_SECRET: 'slack-client-secret-for-tests', SLACK_SIGNING_SECRET: SIGNING },
  });
  const admin = await svc.createUser({ email: 'admin@example.com', name: 'Ada Admin', admin: true });
  const alice = await svc.createUser({ email: 'alice@example.com', name: 'Alice' });
  const bob = await svc.createUser({ email: 'bob@example.com', name: 'Bob' });
  slack.addUser('UALICE', { displayName: 'alice.s', realName: 'Alice Slack' });
  slack.addUser('UBOB', { realName: 'Bob Slack' });
  const db = await svc.db();

  let seq = 0;
  const nextTs = () => `${1700000100 + ++seq}.000${String(seq).padStart(3, '0')}`;
  const deliver = (payload, { secret = SIGNING, timestamp, headers = {} } = {}) => {
    const raw = JSON.stringify(payload);
    return svc.request('POST', '/slack/events', { raw, headers: { 'content-type': 'application/json', ...(secret ? sign(secret, raw, timestamp) : {}), ...headers } });
  };
  const envelope = (event, eventId = `Ev${++seq}`) => ({ token: 'legacy-verification-token', team_id: TEAM, api_app_id: 'A1', type: 'event_callback', event_id: eventId, event_time: 1700000000, event });
  /** A DM from `user` in `channel`; answers {ts, eventId, response}. */
  const dm = async (user, channel, text, { ts = nextTs(), threadTs, eventId, extra = {}, headers } = {}) => {
    const env = envelope({ type: 'message', channel_type: 'im', channel, user, text, ts, event_ts: ts, ...(threadTs ? { thread_ts: threadTs } : {}), ...extra }, eventId);
    return { ts, eventId: env.event_id, response: await deliver(env, { headers }) };
  };
  const mention = async (user, channel, text, { ts = nextTs(), threadTs } = {}) => {
    const env = envelope({ type: 'app_mention', channel, user, text, ts, event_ts: ts, ...(threadTs ? { thread_ts: threadTs } : {}) });
    return { ts, response: await deliver(env) };
  };
  const until = async (what, fn, ms = 15_000) => {
    const t0 = Date.now();
    for (;;) {
      const v = await fn();
      if (v) return v;
      if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
      await sleep(50);
    }
  };
  const messagesOf = async (user, sessionId) => (await svc.request('GET', `/api/sessions/${sessionId}/messages`, { token: user.token })).body.messages;
  const queueOf = async (user, sessionId) => (await svc.request('GET', `/api/sessions/${sessionId}/queue`, { token: user.token })).body.prompts;
  /** Waits until every Slack event delivered so far has been worked: a marker DM from an
   * unlinked person is sent last and its link reply awaited (one queue, in order). */
  let markers = 0;
  const settle = async () => {
    const channel = `DMARK${++markers}`;
    await dm(`UMARK${markers}`, channel, 'marker');
    await until('the marker\'s link reply', () => slack.messagesIn(channel).length > 0);
    await sleep(300);
  };

  await t.test('install: admin URL with the scopes and a server-side state; the callback stores the token sealed; a state works once', async () => {
    assert.equal((await svc.request('GET', '/api/slack/install', { token: alice.token })).status, 403);
    const r = await svc.request('GET', '/api/slack/install', { token: admin.token });
    assert.equal(r.status, 200);
    assert.deepEqual(Object.keys(r.body), ['url']);
    const url = new URL(r.body.url);
    assert.equal(`${url.origin}${url.pathname}`, 'https://slack.example/oauth/v2/authorize');
    assert.equal(url.searchParams.get('client_id'), '1234.5678');
    assert.equal(url.searchParams.get('scope'), 'app_mentions:read,chat:write,im:history,im:read,im:write,users:read');
    assert.equal(url.searchParams.get('redirect_uri'), 'https://svc.example.com/slack/oauth/callback');
    const state = url.searchParams.get('state');
    assert.match(state, /^[A-Za-z0-9_-]{40,}$/);
    const stored = await db.prepare("SELECT state_hash, user_id FROM oauth_states WHERE purpose = 'slack:install'").all();
    assert.equal(stored.results.length, 1);
    assert.notEqual(stored.results[0].state_hash, state, 'the state is stored hashed');
    assert.equal(stored.results[0].user_id, admin.userId);

    slack.addInstall('code-1', { token: BOT, team: TEAM, teamName: 'Acme' });
    const cb = await svc.request('GET', `/slack/oauth/callback?code=code-1&state=${state}`);
    assert.equal(cb.status, 302);
    assert.equal(cb.headers.get('location'), `${FRONTEND}/settings/slack?installed=${TEAM}`);
    assert.deepEqual(slack.exchanges.at(-1), { client_id: '1234.5678', client_secret: 'slack-client-secret-for-tests', code: 'code-1', redirect_uri: 'https://svc.example.com/slack/oauth/callback' });
    const row = await db.prepare('SELECT bot_token_encrypted FROM slack_workspaces WHERE team_id = ?').bind(TEAM).first();
    assert.match(row.bot_token_encrypted, /^enc:v1:/);
    assert.ok(!row.bot_token_encrypted.includes(BOT));

    // The same state again (even with a good code) is refused, without an exchange.
    slack.addInstall('code-2', { token: 'xoxb-never-used-token-0000000000', team: 'T0002' });
    const exchanges = slack.exchanges.length;
    const again = await svc.request('GET', `/slack/oauth/callback?code=code-2&state=${state}`);
    assert.equal(again.headers.get('location'), `${FRONTEND}/settings/slack?error=invalid_state`);
    assert.equal(slack.exchanges.length, exchanges);
    for (const [query, error] of [['code=code-2&state=made-up', 'invalid_state'], ['state=x', 'missing_params'], ['error=access_denied', 'access_denied']]) {
      const res = await svc.request('GET', `/slack/oauth/callback?${query}`);
      assert.equal(res.status, 302);
      assert.equal(res.headers.get('location'), `${FRONTEND}/settings/slack?error=${error}`, query);
    }
    // A code Slack refuses.
    const fresh = new URL((await svc.request('GET', '/api/slack/install', { token: admin.token })).body.url).searchParams.get('state');
    const refused = await svc.request('GET', `/slack/oauth/callback?code=bad-code&state=${fresh}`);
    assert.equal(refused.headers.get('location'), `${FRONTEND}/settings/slack?error=token_exchange_failed`);

    const list = await svc.request('GET', '/api/slack/workspaces', { token: admin.token });
    assert.equal(list.status, 200);
    assert.equal(list.body.hasMore, false);
    assert.equal(list.body.workspaces.length, 1);
    const ws = list.body.workspaces[0];
    assert.deepEqual([ws.teamId, ws.teamName, ws.botUserId, ws.appId, ws.installedBy], [TEAM, 'Acme', 'UBOT', 'A1', admin.userId]);
    assert.deepEqual(ws.scopes, ['app_mentions:read', 'chat:write', 'im:history', 'im:read', 'im:write', 'users:read']);
    assert.ok(!list.text.includes('xoxb'));
    assert.equal((await svc.request('GET', '/api/slack/workspaces', { token: alice.token })).status, 403);
  });

  await t.test('events: a bad signature and a stale timestamp are refused; url_verification answers the challenge', async () => {
    const env = envelope({ type: 'message', channel_type: 'im', channel: 'DX', user: 'UX', text: 'hi', ts: '1.1' });
    const bad = await deliver(env, { secret: 'not-the-signing-secret' });
    assert.equal(bad.status, 401);
    assert.equal(bad.body.code, 'INVALID_SIGNATURE');
    const unsigned = await deliver(env, { secret: null });
    assert.equal(unsigned.status, 401);
    const stale = await deliver(env, { timestamp: Math.floor(Date.now() / 1000) - 301 });
    assert.equal(stale.status, 401);
    // A signature over other bytes (a re-serialized body) does not count.
    const raw = JSON.stringify(env);
    const tampered = await svc.request('POST', '/slack/events', { raw: raw.replace('"hi"', '"hi!"'), headers: { 'content-type': 'application/json', ...sign(SIGNING, raw) } });
    assert.equal(tampered.status, 401);
    const ok = await deliver(env, { timestamp: Math.floor(Date.now() / 1000) - 240 });
    assert.equal(ok.status, 200);
    const challenge = await deliver({ token: 'x', challenge: 'c4Ll3nGe-value', type: 'url_verification' });
    assert.equal(challenge.status, 200);
    assert.deepEqual(challenge.body, { challenge: 'c4Ll3nGe-value' });
  });

  let orch;
  let linkCode;
  await t.test('an unlinked person gets one link reply, not one per message, and nothing reaches a session', async () => {
    orch = (await svc.request('POST', '/api/me/orchestrator', { token: alice.token })).body.session;
    const first = await dm('UALICE', 'DALICE', 'hello bot');
    assert.equal(first.response.status, 200);
    assert.deepEqual(first.response.body, { ok: true });
    const reply = await until('the link reply', () => slack.messagesIn('DALICE')[0]);
    assert.equal(reply.method, 'chat.postMessage');
    assert.equal(reply.thread_ts, first.ts, 'answered in the message\'s thread');
    const m = /<(https:\/\/app\.example\.com\/slack\/link#code=([A-Za-z0-9_-]+))\|[^>]+>/.exec(reply.text);
    assert.ok(m, reply.text);
    linkCode = m[2];
    assert.equal(checkMrkdwn(reply.text), null);
    await dm('UALICE', 'DALICE', 'are you there?');
    await dm('UALICE', 'DALICE', 'hello??');
    // A mention in a channel is answered only to its sender (ephemeral), once as well.
    const chan = await mention('UBOB', 'CGENERAL', '<@UBOT> hi');
    await mention('UBOB', 'CGENERAL', '<@UBOT> hi again');
    await settle();
    assert.equal(slack.messagesIn('DALICE').length, 1, 'one link reply for three messages');
    const bobs = slack.messagesIn('CGENERAL');
    assert.equal(bobs.length, 1);
    assert.deepEqual([bobs[0].method, bobs[0].user, bobs[0].thread_ts], ['chat.postEphemeral', 'UBOB', chan.ts]);
    assert.deepEqual(await messagesOf(alice, orch.id), []);
    const code = await db.prepare("SELECT code_hash, expires_at FROM slack_link_codes WHERE slack_user_id = 'UALICE'").first();
    assert.notEqual(code.code_hash, linkCode, 'codes are stored hashed');
    const ttl = Date.parse(code.expires_at) - Date.now();
    assert.ok(ttl > 14 * 60_000 && ttl <= 15 * 60_000, `valid 15 minutes (${ttl} ms left)`);
  });

  await t.test('linking: the code links that Slack person to the caller, once; another user cannot use it', async () => {
    assert.equal((await svc.request('POST', '/api/me/slack/link', { token: alice.token, body: {} })).status, 400);
    const wrong = await svc.request('POST', '/api/me/slack/link', { token: alice.token, body: { code: 'not-a-code' } });
    assert.deepEqual([wrong.status, wrong.body.code], [400, 'INVALID_CODE']);
    const r = await svc.request('POST', '/api/me/slack/link', { token: alice.token, body: { code: linkCode } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.deepEqual(r.body.link, { teamId: TEAM, teamName: 'Acme', slackUserId: 'UALICE', slackUserName: null, createdAt: r.body.link.createdAt });
    assert.match(r.body.link.createdAt, /Z$/);
    // Bob holds Alice's (used) code: it links nothing.
    const stolen = await svc.request('POST', '/api/me/slack/link', { token: bob.token, body: { code: linkCode } });
    assert.deepEqual([stolen.status, stolen.body.code], [400, 'INVALID_CODE']);
    assert.deepEqual((await svc.request('GET', '/api/me/slack', { token: bob.token })).body, { links: [] });
    assert.equal((await svc.request('DELETE', `/api/me/slack/${TEAM}`, { token: bob.token })).status, 404);
    const mine = (await svc.request('GET', '/api/me/slack', { token: alice.token })).body.links;
    assert.deepEqual(mine.map((l) => [l.teamId, l.slackUserId]), [[TEAM, 'UALICE']]);
    // Slack hears about it where the code was asked for.
    await until('the confirmation', () => slack.messagesIn('DALICE').some((x) => x.text.startsWith('Linked!')));
  });

  let dmTs;
  await t.test('a linked person\'s DM reaches their orchestrator, with the thread as the channel id', async () => {
    const { ts, response } = await dm('UALICE', 'DALICE', 'please build &lt;the&gt; thing &amp; test it');
    assert.equal(response.status, 200);
    dmTs = ts;
    const msgs = await until('the prompt', async () => {
      const list = await messagesOf(alice, orch.id);
      return list.length ? list : null;
    });
    assert.equal(msgs.length, 1);
    assert.deepEqual(
      [msgs[0].content, msgs[0].channelType, msgs[0].channelId, msgs[0].authorId, msgs[0].authorName],
      ['please build <the> thing & test it', 'slack', `${TEAM}:DALICE:${ts}`, alice.userId, 'alice.s'],
    );
    // The name came from users.info and is remembered on the link.
    assert.equal((await svc.request('GET', '/api/me/slack', { token: alice.token })).body.links[0].slackUserName, 'alice.s');
  });

  await t.test('a linked person without a running orchestrator is told so, in a channel only to them', async () => {
    const bobCode = /slack\/link#code=([A-Za-z0-9_-]+)\|/.exec(slack.messagesIn('CGENERAL')[0].text)[1];
    const linked = await svc.request('POST', '/api/me/slack/link', { token: bob.token, body: { code: bobCode } });
    assert.equal(linked.status, 201);
    assert.equal(linked.body.link.slackUserId, 'UBOB');
    // Alice cannot take Bob's code once it is used, nor her own again.
    for (const code of [bobCode, linkCode]) {
      assert.equal((await svc.request('POST', '/api/me/slack/link', { token: alice.token, body: { code } })).body.code, 'INVALID_CODE');
    }
    const { ts } = await mention('UBOB', 'CGENERAL', '<@UBOT> anyone home?');
    const said = await until('the answer', () => slack.messagesIn('CGENERAL', ts).find((m) => m.text.startsWith('Your orchestrator is not running')));
    assert.deepEqual([said.method, said.user], ['chat.postEphemeral', 'UBOB']);
  });

  await t.test('a retried event (X-Slack-Retry-Num) is acted on once; bot messages and edits are ignored', async () => {
    const first = await dm('UALICE', 'DALICE', 'only once please', { eventId: 'EvRetry1' });
    assert.deepEqual(first.response.body, { ok: true });
    for (const n of ['1', '2']) {
      const again = await dm('UALICE', 'DALICE', 'only once please', { eventId: 'EvRetry1', ts: first.ts, headers: { 'x-slack-retry-num': n, 'x-slack-retry-reason': 'http_timeout' } });
      assert.equal(again.response.status, 200);
      assert.deepEqual(again.response.body, { ok: true, duplicate: true });
    }
    await dm('UALICE', 'DALICE', 'from a bot', { extra: { bot_id: 'B1', subtype: 'bot_message' } });
    await dm('UALICE', 'DALICE', 'edited text', { extra: { subtype: 'message_changed' } });
    await dm('UBOT', 'DALICE', 'the bot itself');
    await settle();
    const contents = (await messagesOf(alice, orch.id)).map((m) => m.content);
    assert.equal(contents.filter((c) => c === 'only once please').length, 1);
    assert.ok(!contents.some((c) => /from a bot|edited text|the bot itself/.test(c)), contents.join(' | '));
    const inbox = (await svc.request('GET', '/api/admin/webhooks/inbox?provider=slack', { token: admin.token })).body.deliveries;
    assert.equal(inbox.filter((d) => d.deliveryId === 'EvRetry1').length, 1);
  });

  await t.test('a mention starts its own thread; a bound thread reaches its session with the binding\'s queue mode and debounce', async () => {
    // Alice's Slack account in a channel: top-level mention → orchestrator, thread = its ts.
    const top = await mention('UALICE', 'CGENERAL', '<@UBOT> summarize <https://example.com/x?a=1&amp;b=2|the doc>');
    const got = await until('the mention', async () => (await messagesOf(alice, orch.id)).find((m) => m.channelId === `${TEAM}:CGENERAL:${top.ts}`));
    assert.equal(got.content, 'summarize [the doc](https://example.com/x?a=1&b=2)');

    const s = (await svc.request('POST', '/api/sessions', { token: alice.token, body: { workspace: 'slack-thread', title: 'Thread work' } })).body.session;
    const thread = '1700000000.000100';
    const b = await svc.request('POST', '/api/channels/bindings', {
      token: alice.token, body: { sessionId: s.id, channelType: 'slack', channelId: `${TEAM}:CGENERAL:${thread}`, queueMode: 'collect', collectDebounceMs: 1500 },
    });
    assert.equal(b.status, 201, JSON.stringify(b.body));
    assert.equal(b.body.binding.scopeKey, `user:${alice.userId}:slack:${TEAM}:CGENERAL:${thread}`);
    await mention('UALICE', 'CGENERAL', '<@UBOT> first part', { threadTs: thread });
    await mention('UALICE', 'CGENERAL', '<@UBOT> second part', { threadTs: thread });
    const prompts = await until('the collected prompt', async () => {
      const q = await queueOf(alice, s.id);
      return q.length ? q : null;
    });
    assert.equal(prompts.length, 1, 'collect merged the two messages after the debounce');
    assert.deepEqual([prompts[0].content, prompts[0].queueMode, prompts[0].channelId], ['first part\n\n---\n\nsecond part', 'collect', `${TEAM}:CGENERAL:${thread}`]);
    assert.deepEqual((await messagesOf(alice, s.id)).map((m) => m.content), ['first part', 'second part']);
    assert.ok(!(await messagesOf(alice, orch.id)).some((m) => /part/.test(m.content)), 'the bound thread did not go to the orchestrator');
  });

  await t.test('a completed prompt from Slack is answered in its thread; long Markdown arrives as valid mrkdwn chunks', async () => {
    await svc.request('POST', `/api/sessions/${orch.id}/queue/clear`, { token: alice.token });
    await dm('UALICE', 'DALICE', 'write me a long report');
    const claimed = await until('the claim', async () => {
      const c = await svc.request('POST', `/api/sessions/${orch.id}/queue/claim`, { token: alice.token });
      return c.status === 200 ? c : null;
    });
    assert.equal(claimed.body.prompt.content, 'write me a long report');
    const threadTs = claimed.body.prompt.channelId.split(':')[2];
    const md = Array.from({ length: 1500 }, (_, i) => `Line ${i} has **bold**, _italics_, ~~gone~~, \`a*b_${i}\` and a [link|x](https://example.com/a_b?x=${i}&y=1) <tag> & more.`).join('\n\n')
      + '\n\n```js\nconst big = "' + 'x'.repeat(2000) + '";\n```\n\n> quoted **end**';
    assert.ok(md.length > 2 * MESSAGE_LIMIT);
    const before = slack.sent.length;
    const done = await svc.request('POST', `/api/sessions/${orch.id}/queue/${claimed.body.prompt.id}/complete`, { token: alice.token, body: { result: md } });
    assert.equal(done.status, 200, JSON.stringify(done.body));
    const sent = slack.sent.slice(before);
    assert.deepEqual(done.body.reply, { channelType: 'slack', channelId: `${TEAM}:DALICE:${threadTs}`, delivered: true, parts: sent.length });
    assert.ok(sent.length >= 3, `${sent.length} chunks`);
    for (const m of sent) {
      assert.deepEqual([m.method, m.channel, m.thread_ts, m.mrkdwn], ['chat.postMessage', 'DALICE', threadTs, true]);
      assert.ok(m.text.length <= MESSAGE_LIMIT, `${m.text.length} characters`);
      assert.equal(checkMrkdwn(m.text), null);
    }
    const text = sent.map((m) => m.text).join('\n');
    assert.ok(text.includes('Line 7 has *bold*, _italics_, ~gone~, `a*b_7` and a <https://example.com/a_b?x=7&amp;y=1|link∣x> &lt;tag&gt; &amp; more.'), text.slice(0, 400));
    assert.ok(text.includes('Line 1499 has *bold*'));
    assert.ok(text.includes('> quoted *end*'));
  });

  await t.test('session replies go to threads the user talks in; 429 Retry-After is honoured', async () => {
    const channelId = `${TEAM}:DALICE:${dmTs}`;
    const r = await svc.request('POST', `/api/sessions/${orch.id}/reply`, { token: alice.token, body: { channelType: 'slack', channelId, text: 'Done: **all green** <3' } });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    assert.deepEqual(r.body, { delivered: true, parts: 1 });
    const last = slack.sent.at(-1);
    assert.deepEqual([last.channel, last.thread_ts, last.text], ['DALICE', dmTs, 'Done: *all green* &lt;3']);
    // Slack asks to wait a second: waited out.
    slack.fake.fault(/chat\.postMessage$/, { status: 429, headers: { 'Retry-After': '1' }, json: { ok: false, error: 'ratelimited' } });
    const t0 = Date.now();
    const slow = await svc.request('POST', `/api/sessions/${orch.id}/reply`, { token: alice.token, body: { channelType: 'slack', channelId, text: 'eventually' } });
    assert.equal(slow.status, 202);
    assert.ok(Date.now() - t0 >= 900, 'waited for Retry-After');
    assert.equal(slack.sent.at(-1).text, 'eventually');
    // A long wait is the caller's to honour.
    slack.fake.fault(/chat\.postMessage$/, { status: 429, headers: { 'Retry-After': '30' }, json: { ok: false, error: 'ratelimited' } });
    const limited = await svc.request('POST', `/api/sessions/${orch.id}/reply`, { token: alice.token, body: { channelType: 'slack', channelId, text: 'later' } });
    assert.deepEqual([limited.status, limited.body.code, limited.headers.get('retry-after'), limited.body.details.retryAfter], [429, 'RATE_LIMITED', '30', 30]);
    // Where the user never talked to the bot (someone else's DM), nothing is sent.
    const sentBefore = slack.sent.length;
    const elsewhere = await svc.request('POST', `/api/sessions/${orch.id}/reply`, { token: alice.token, body: { channelType: 'slack', channelId: `${TEAM}:DBOB:1700000000.1`, text: 'hi' } });
    assert.deepEqual([elsewhere.status, elsewhere.body.code], [409, 'SLACK_NOT_CONNECTED']);
    const bobSession = (await svc.request('POST', '/api/sessions', { token: bob.token, body: { workspace: 'b' } })).body.session;
    const intruder = await svc.request('POST', `/api/sessions/${bobSession.id}/reply`, { token: bob.token, body: { channelType: 'slack', channelId, text: 'hi alice' } });
    assert.deepEqual([intruder.status, intruder.body.code], [409, 'SLACK_NOT_CONNECTED']);
    assert.equal(slack.sent.length, sentBefore);
    for (const body of [{ channelType: 'slack', channelId: 'T0001:DALICE', text: 'x' }, { channelType: 'slack', channelId, text: ' ' }, { channelType: 'slack', channelId, text: 'x', photo: { data: 'AA==', mimeType: 'image/png' } }]) {
      assert.equal((await svc.request('POST', `/api/sessions/${orch.id}/reply`, { token: alice.token, body })).status, 400, JSON.stringify(body));
    }
    assert.equal((await svc.request('POST', `/api/sessions/${orch.id}/reply`, { token: bob.token, body: { channelType: 'slack', channelId, text: 'x' } })).status, 404);
  });

  await t.test('unlinking and removing the workspace', async () => {
    assert.deepEqual((await svc.request('DELETE', `/api/me/slack/${TEAM}`, { token: alice.token })).body, { success: true });
    assert.deepEqual((await svc.request('GET', '/api/me/slack', { token: alice.token })).body, { links: [] });
    // Unlinked again: Alice's next DM is offered a new link instead of reaching the session.
    const before = (await messagesOf(alice, orch.id)).length;
    await dm('UALICE', 'DALICE', 'still there?');
    await until('a new link reply', () => slack.messagesIn('DALICE').some((m) => m.text.includes('slack/link#code=') && !m.text.includes(linkCode)));
    assert.equal((await messagesOf(alice, orch.id)).length, before);
    assert.equal((await svc.request('DELETE', `/api/slack/workspaces/${TEAM}`, { token: alice.token })).status, 403);
    assert.deepEqual((await svc.request('DELETE', `/api/slack/workspaces/${TEAM}`, { token: admin.token })).body, { success: true });
    assert.deepEqual(slack.revoked, [BOT]);
    assert.deepEqual((await svc.request('GET', '/api/slack/workspaces', { token: admin.token })).body, { workspaces: [], hasMore: false });
    assert.equal((await svc.request('DELETE', `/api/slack/workspaces/${TEAM}`, { token: admin.token })).status, 404);
    assert.equal((await db.prepare('SELECT COUNT(*) AS n FROM slack_link_codes').first()).n, 0);
  });

  await t.test('without SLACK_SIGNING_SECRET deliveries are refused (503); without the client id installs are', async () => {
    await svc.reconfigure({ SLACK_SIGNING_SECRET: undefined, SLACK_CLIENT_ID: undefined });
    const r = await deliver(envelope({ type: 'message', channel_type: 'im', channel: 'DX', user: 'UX', text: 'hi', ts: '1.1' }));
    assert.deepEqual([r.status, r.body.code], [503, 'WEBHOOK_NOT_CONFIGURED']);
    const i = await svc.request('GET', '/api/slack/install', { token: admin.token });
    assert.deepEqual([i.status, i.body.code], [503, 'SLACK_NOT_CONFIGURED']);
  });

  await t.test('no bot token, client secret or signing secret in any response or log line', async () => {
    await sleep(50);
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
