// Realtime integrations (contract §16) against the fakes (tests/lib/fake-push.mjs): Gmail's
// users.watch and Pub/Sub push with OIDC tokens signed by a key made here and published as a
// JWKS; Calendar channels with their tokens, `sync` and `exists` messages, expiry and
// deselection; GitHub repository webhooks on administered repositories only. Every bad push
// (no token, wrong audience, expired, another key, unknown channel, wrong channel token)
// answers 401/404 and enqueues nothing; a flood enqueues one run (plus at most one owed
// follow-up when it arrived while that run was running); a notification makes the new entity
// visible through the API. Connection health: a refused credential records an event, told to
// the orchestrator; reactivation records its recovery.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGoogle } from '../lib/fake-google.mjs';
import { addGmail, rawMessage } from '../lib/fake-gmail.mjs';
import { addFakeCalendar } from '../lib/fake-calendar.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';
import { addGmailPush, addCalendarPush, addGithubHooks, rsaKey, signJwt } from '../lib/fake-push.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ME = 'rt.alice@gmail.test';

async function until(what, f, ms = 20000) {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function helpers(svc, user) {
  const api = (method, path, body) => svc.request(method, path, { token: user.token, body });
  const runs = async (id) => (await (await svc.db()).prepare('SELECT COUNT(*) AS n FROM sync_logs WHERE integration_id = ?1').bind(id).first()).n;
  const idle = (id) => until('runs to finish', async () => (await (await svc.db()).prepare("SELECT COUNT(*) AS n FROM sync_logs WHERE integration_id = ?1 AND status IN ('pending', 'running')").bind(id).first()).n === 0);
  const tick = async () => (await svc.mf.getWorker()).scheduled({ cron: '* * * * *' });
  const sync = async (id, body = {}) => {
    const r = await api('POST', `/api/integrations/${id}/sync`, body);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return until('sync', async () => {
      const s = await api('GET', `/api/integrations/${id}/sync/${r.body.syncId}`);
      return ['completed', 'failed'].includes(s.body.status) && s.body;
    });
  };
  const realtime = async (id) => (await api('GET', `/api/integrations/${id}`)).body.integration.realtime;
  const entity = async (id, type, externalId) => {
    const r = await api('GET', `/api/integrations/${id}/entities/${type}?limit=100`);
    return r.body.entities.find((e) => e._sync.externalId === externalId || e.id === externalId);
  };
  /** Forces a look at the integration's subscriptions now (the cron's next tick enqueues it). */
  const look = async (id) => {
    await (await svc.db()).prepare("UPDATE realtime_state SET next_check_at = '2000-01-01T00:00:00.000Z' WHERE integration_id = ?1").bind(id).run();
    await tick();
  };
  return { api, runs, idle, tick, sync, realtime, entity, look };
}

test('Realtime: Gmail push through Pub/Sub', async (t) => {
  const g = await startFakeGoogle(t);
  const mail = addGmail(g);
  const ps = addGmailPush(g, mail);
  const svc = await startService(t, { vars: { ...g.vars(), ...ps.vars(), SYNC_REQUEST_BUDGET: '1000' } });
  ps.endpoint = `${svc.url}/webhooks/google/pubsub`;
  const alice = await svc.createUser({ email: 'rt-alice@example.com' });
  const h = helpers(svc, alice);
  for (let i = 0; i < 3; i++) await mail.addMessage(ME, { raw: rawMessage({ to: ME, subject: `Seed ${i}` }) });
  const creds = g.grant(ME);
  knownSecrets.add(creds.access_token);
  knownSecrets.add(creds.refresh_token);
  const created = await h.api('POST', '/api/integrations', { service: 'gmail', credentials: creds, config: { syncFrequency: 'realtime' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.integration.id;
  assert.deepEqual(Object.keys(created.body.integration.realtime), ['mode']);
  // The job watches the mailbox on the configured topic.
  const rt = await until('push mode', async () => { const r = await h.realtime(id); return r.mode === 'push' && r; });
  assert.ok(ps.watches.has(ME), 'users.watch was called');
  assert.equal(ps.watches.get(ME).topicName, ps.topic);
  assert.ok(Date.parse(rt.expiresAt) > Date.now() + 6 * 24 * 3600 * 1000, JSON.stringify(rt));
  assert.equal((await h.sync(id)).status, 'completed');
  await h.idle(id);

  await t.test('a new message is visible through the API after its push', async () => {
    const before = ps.published;
    const m = await mail.addMessage(ME, { raw: rawMessage({ to: ME, subject: 'Pushed message' }) });
    assert.equal(ps.published, before + 1, 'the fake published the change');
    const seen = await until('the pushed message', () => h.entity(id, 'messages', m.id), 15000);
    assert.equal(seen.subject, 'Pushed message');
    const r = await h.realtime(id);
    assert.ok(r.lastNotificationAt, JSON.stringify(r));
    await h.idle(id);
  });

  await t.test('bad pushes answer 401 and enqueue nothing', async () => {
    const n = await h.runs(id);
    const body = ps.body(ME, 99999);
    const post = (headers, b = body) => fetch(ps.endpoint, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(b) });
    const other = rsaKey();
    const cases = {
      'no token': {},
      'not a JWT': { authorization: 'Bearer not.a.jwt' },
      'basic scheme': { authorization: `Basic ${ps.token()}` },
      'wrong audience': { authorization: `Bearer ${ps.token({ aud: 'https://someone-else.example.com/push' })}` },
      expired: { authorization: `Bearer ${ps.token({ exp: Math.floor(Date.now() / 1000) - 3600, iat: Math.floor(Date.now() / 1000) - 7200 })}` },
      'wrong service account': { authorization: `Bearer ${ps.token({ email: 'attacker@evil.iam.gserviceaccount.com' })}` },
      'unverified email': { authorization: `Bearer ${ps.token({ email_verified: false })}` },
      'wrong issuer': { authorization: `Bearer ${ps.token({ iss: 'https://evil.example.com' })}` },
      'unpublished key': { authorization: `Bearer ${ps.token({}, other)}` },
      'published kid, other key': { authorization: `Bearer ${signJwt(ps.claims(), { ...other, kid: ps.key.kid })}` },
      'alg none': { authorization: `Bearer ${Buffer.from(JSON.stringify({ alg: 'none', kid: ps.key.kid })).toString('base64url')}.${Buffer.from(JSON.stringify(ps.claims())).toString('base64url')}.` },
    };
    for (const [name, headers] of Object.entries(cases)) {
      const r = await post(headers);
      const j = await r.json();
      assert.deepEqual([r.status, j.code], [401, 'UNAUTHORIZED'], name);
      assert.ok(!JSON.stringify(j).includes('eyJ'), 'no token echoed');
    }
    // A valid token with a broken message: 400, nothing enqueued.
    const broken = await post({ authorization: `Bearer ${ps.token()}` }, { message: { data: '%%%', messageId: '1' } });
    assert.deepEqual([broken.status, (await broken.json()).code], [400, 'VALIDATION_ERROR']);
    // A mailbox nobody watches: acknowledged, nothing to do.
    const stranger = await ps.push(ps.endpoint, ps.body('nobody@gmail.test', 5));
    assert.equal(stranger, 200);
    await sleep(300);
    assert.equal(await h.runs(id), n, 'no run was created');
    // The keys were fetched once and cached per their max-age (the unknown kid refetched at most once).
    assert.ok(ps.certsFetches <= 2, `certs fetched ${ps.certsFetches} times`);
  });

  await t.test('a flood of pushes enqueues one run (and at most one owed follow-up)', async () => {
    await h.idle(id);
    const n = await h.runs(id);
    // The run's pages are slow, so the whole flood arrives while it waits or runs.
    g.fake.fault('/gmail/v1/users/me/history', { delayMs: 1500 }, 1);
    const statuses = await Promise.all(Array.from({ length: 100 }, (_, i) => ps.push(ps.endpoint, ps.body(ME, 200000 + i))));
    assert.ok(statuses.every((s) => s === 200), JSON.stringify(statuses));
    await h.idle(id);
    await h.tick(); // an owed follow-up (notifications during the running run) starts here
    await h.idle(id);
    const added = (await h.runs(id)) - n;
    console.log(`# flood of 100 pushes: ${added} run(s)`);
    assert.ok(added >= 1 && added <= 2, `${added} runs for 100 notifications`);
    // A repeated delivery (same messageId) is acknowledged once.
    const again = ps.body(ME, 300000, 'same-id');
    assert.equal(await ps.push(ps.endpoint, again), 200);
    const dup = await fetch(ps.endpoint, { method: 'POST', headers: { authorization: `Bearer ${ps.token()}`, 'content-type': 'application/json' }, body: JSON.stringify(again) });
    assert.equal((await dup.json()).duplicate, true);
    await h.idle(id);
  });

  await t.test('connection health: lost and restored, told to the orchestrator', async () => {
    const orch = (await h.api('POST', '/api/me/orchestrator')).body.session;
    assert.ok(orch?.id);
    // Google refuses the credentials: the run fails and the integration needs reconnecting.
    g.fake.fault('/gmail/v1/', { status: 401, json: g.unauthorized.json }, 50);
    g.fake.fault('/token', { status: 400, json: { error: 'invalid_grant', error_description: 'Token has been expired or revoked.' } }, 5);
    await h.sync(id);
    g.fake.reset();
    const broken = (await h.api('GET', `/api/integrations/${id}`)).body.integration;
    assert.equal(broken.status, 'error', JSON.stringify(broken));
    const events = await h.api('GET', `/api/integrations/${id}/events`);
    assert.equal(events.status, 200);
    assert.equal(events.body.events[0].kind, 'connection_lost');
    assert.equal(events.body.events[0].code, 'RECONNECT_REQUIRED');
    await h.tick();
    const told = await until('the orchestrator told', async () => {
      const msgs = (await h.api('GET', `/api/sessions/${orch.id}/messages`)).body.messages ?? [];
      return msgs.find((m) => JSON.stringify(m).includes('lost its connection'));
    });
    assert.ok(JSON.stringify(told).includes(id));
    // Working credentials again: reactivation records the recovery.
    const back = await h.api('PATCH', `/api/integrations/${id}`, { status: 'active' });
    assert.equal(back.status, 200, JSON.stringify(back.body));
    const after = await h.api('GET', `/api/integrations/${id}/events?limit=1`);
    assert.equal(after.body.events[0].kind, 'connection_restored');
    assert.equal(after.body.hasMore, true);
    const page2 = await h.api('GET', `/api/integrations/${id}/events?limit=1&cursor=${after.body.cursor}`);
    assert.equal(page2.body.events[0].kind, 'connection_lost');
    // Not the owner: 404.
    const bob = await svc.createUser({ email: 'rt-bob@example.com' });
    const other = await svc.request('GET', `/api/integrations/${id}/events`, { token: bob.token });
    assert.equal(other.status, 404);
    const badLimit = await h.api('GET', `/api/integrations/${id}/events?limit=0`);
    assert.equal(badLimit.status, 400);
    await h.tick();
    await until('the recovery told', async () => {
      const msgs = (await h.api('GET', `/api/sessions/${orch.id}/messages`)).body.messages ?? [];
      return msgs.find((m) => JSON.stringify(m).includes('connected again'));
    });
  });

  await t.test('deleting the integration stops the watch', async () => {
    await h.idle(id);
    assert.ok(ps.watches.has(ME));
    const del = await h.api('DELETE', `/api/integrations/${id}`);
    assert.equal(del.status, 200);
    assert.ok(!ps.watches.has(ME), 'users.stop was called');
  });
});

test('Realtime: Pub/Sub endpoint without configuration refuses deliveries', async (t) => {
  const svc = await startService(t);
  const r = await svc.request('POST', '/webhooks/google/pubsub', { body: { message: { data: 'e30=', messageId: '1' } } });
  assert.deepEqual([r.status, r.body.code], [503, 'WEBHOOK_NOT_CONFIGURED']);
});

test('Realtime: Calendar channels', async (t) => {
  const ALICE = 'rt.cal@example.com';
  const TEAM = 'team-rt@group.calendar.google.com';
  const OTHER = 'other-rt@group.calendar.google.com';
  const g = await startFakeGoogle(t);
  const cal = addFakeCalendar(g);
  const ch = addCalendarPush(g, cal);
  cal.addAccount(ALICE);
  cal.addCalendar(ALICE, { id: TEAM, selected: true });
  cal.addCalendar(ALICE, { id: OTHER, selected: false });
  cal.addEvent(ALICE, ALICE, { summary: 'Seed', start: { dateTime: '2026-03-01T10:00:00Z' }, end: { dateTime: '2026-03-01T11:00:00Z' } });
  const svc = await startService(t, { vars: { ...g.vars(), SYNC_REQUEST_BUDGET: '1000' } });
  const alice = await svc.createUser({ email: 'rt-cal@example.com' });
  const h = helpers(svc, alice);
  const creds = g.grant(ALICE);
  knownSecrets.add(creds.access_token);
  knownSecrets.add(creds.refresh_token);
  const created = await h.api('POST', '/api/integrations', { service: 'google_calendar', credentials: creds, config: { syncFrequency: 'realtime' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.integration.id;
  // No calendar is synced yet: polling, with the reason.
  const early = await until('the first look', async () => { const r = await h.realtime(id); return r.note && r; });
  assert.equal(early.mode, 'poll');
  // After the first sync, a channel per selected calendar.
  await h.sync(id);
  await until('push mode', async () => (await h.realtime(id)).mode === 'push');
  const channels = ch.live();
  assert.deepEqual(channels.map((c) => c.calendarId).sort(), [ALICE, TEAM].sort());
  for (const c of channels) {
    assert.equal(c.address, `${svc.url}/webhooks/google/calendar`);
    assert.ok(c.token && c.token.length >= 32, 'a per-channel secret');
    knownSecrets.add(c.token);
  }
  assert.notEqual(channels[0].token, channels[1].token);
  // Google's first message on each channel (sent as the channel is created) is acknowledged.
  await until('sync messages', () => ch.deliveries.filter((d) => d.state === 'sync').length >= 2);
  assert.ok(ch.deliveries.filter((d) => d.state === 'sync').every((d) => d.status === 200), JSON.stringify(ch.deliveries));
  await h.idle(id);

  await t.test('an event change is visible through the API after its notification', async () => {
    const e = cal.addEvent(ALICE, TEAM, { summary: 'Pushed meeting', start: { dateTime: '2026-03-02T10:00:00Z' }, end: { dateTime: '2026-03-02T11:00:00Z' } });
    const seen = await until('the pushed event', () => h.entity(id, 'events', e.id), 15000);
    assert.equal(seen.summary, 'Pushed meeting');
    assert.ok(ch.deliveries.some((d) => d.state === 'exists' && d.status === 200));
    // Only that calendar was read.
    await h.idle(id);
  });

  await t.test('unknown channels, wrong tokens and missing headers: 404/401/400, nothing enqueued', async () => {
    const n = await h.runs(id);
    const c = ch.live(TEAM)[0];
    const post = (headers) => svc.request('POST', '/webhooks/google/calendar', { headers: { 'x-goog-resource-state': 'exists', ...headers } });
    let r = await post({ 'x-goog-channel-id': '3f1b0c8e-0000-4000-8000-000000000000', 'x-goog-channel-token': c.token });
    assert.deepEqual([r.status, r.body.code], [404, 'NOT_FOUND']);
    r = await post({ 'x-goog-channel-id': c.id, 'x-goog-channel-token': `${c.token.slice(0, -1)}x` });
    assert.deepEqual([r.status, r.body.code], [401, 'UNAUTHORIZED']);
    r = await post({ 'x-goog-channel-id': c.id });
    assert.equal(r.status, 401);
    r = await post({ 'x-goog-channel-token': c.token });
    assert.deepEqual([r.status, r.body.code], [400, 'VALIDATION_ERROR']);
    r = await post({ 'x-goog-channel-id': '../../etc', 'x-goog-channel-token': c.token });
    assert.equal(r.status, 400);
    // `sync` is only acknowledged.
    r = await post({ 'x-goog-channel-id': c.id, 'x-goog-channel-token': c.token, 'x-goog-resource-state': 'sync' });
    assert.equal(r.status, 200);
    await sleep(300);
    assert.equal(await h.runs(id), n);
  });

  await t.test('a flood of notifications enqueues one run (and at most one owed follow-up)', async () => {
    await h.idle(id);
    const n = await h.runs(id);
    const c = ch.live(TEAM)[0];
    g.fake.fault(/\/events$/, { delayMs: 1500 }, 1);
    const rs = await Promise.all(Array.from({ length: 100 }, () => svc.request('POST', '/webhooks/google/calendar', {
      headers: { 'x-goog-channel-id': c.id, 'x-goog-channel-token': c.token, 'x-goog-resource-state': 'exists' },
    })));
    assert.ok(rs.every((r) => r.status === 200));
    await h.idle(id);
    await h.tick();
    await h.idle(id);
    const added = (await h.runs(id)) - n;
    console.log(`# flood of 100 calendar notifications: ${added} run(s)`);
    assert.ok(added >= 1 && added <= 2, `${added} runs`);
  });

  await t.test('a channel about to expire is replaced, then stopped', async () => {
    const old = ch.live(TEAM)[0];
    await (await svc.db()).prepare("UPDATE realtime_watches SET expires_at = ?1 WHERE id = ?2").bind(new Date(Date.now() + 3600_000).toISOString(), old.id).run();
    await h.look(id);
    await until('the replacement', () => ch.channels.get(old.id).stopped && ch.live(TEAM).length === 1);
    assert.notEqual(ch.live(TEAM)[0].id, old.id);
    // The old channel is gone here too.
    const r = await svc.request('POST', '/webhooks/google/calendar', { headers: { 'x-goog-channel-id': old.id, 'x-goog-channel-token': old.token, 'x-goog-resource-state': 'exists' } });
    assert.equal(r.status, 404);
  });

  await t.test('a calendar that leaves the sync has its channel stopped', async () => {
    await h.idle(id);
    const team = ch.live(TEAM)[0];
    cal.accounts.get(ALICE).calendars.find((c) => c.id === TEAM).selected = false;
    cal.accounts.get(ALICE).calendars.find((c) => c.id === OTHER).selected = true;
    await h.sync(id, { fullSync: true });
    await until('the channels follow the selection', () => ch.channels.get(team.id).stopped && ch.live(OTHER).length === 1);
    assert.equal(ch.live(TEAM).length, 0);
  });

  await t.test('realtime turned off, then the integration deleted: every channel stopped', async () => {
    await h.idle(id);
    const off = await h.api('PATCH', `/api/integrations/${id}`, { config: { syncFrequency: 'hourly' } });
    assert.equal(off.status, 200);
    await until('channels stopped', () => ch.live().length === 0);
    assert.equal((await h.realtime(id)).mode, 'poll');
    await h.api('PATCH', `/api/integrations/${id}`, { config: { syncFrequency: 'realtime' } });
    await until('channels again', () => ch.live().length === 2);
    const del = await h.api('DELETE', `/api/integrations/${id}`);
    assert.equal(del.status, 200);
    assert.equal(ch.live().length, 0);
  });
});

test('Realtime: GitHub repository webhooks where the token administers', async (t) => {
  const gh = await startFakeGitHub(t);
  const hooks = addGithubHooks(gh);
  const token = 'gho_realtime_test_token_0001';
  knownSecrets.add(token);
  gh.addUser?.(token, { id: 77, login: 'rt-octo', name: 'RT Octo', email: 'rt-octo@example.com' });
  gh.addRepo('rt-octo/admin-repo', { permissions: { admin: true, push: true, pull: true } });
  gh.addRepo('rt-octo/contrib-repo', { permissions: { admin: false, push: true, pull: true } });
  const secret = 'github-webhook-secret-for-realtime';
  const svc = await startService(t, { vars: { GITHUB_API_URL: gh.api, GITHUB_WEB_URL: gh.web, GITHUB_WEBHOOK_SECRET: secret, SYNC_REQUEST_BUDGET: '1000' } });
  const alice = await svc.createUser({ email: 'rt-gh@example.com' });
  const h = helpers(svc, alice);
  const created = await h.api('POST', '/api/integrations', { service: 'github', credentials: { access_token: token }, config: { syncFrequency: 'realtime', entities: ['repositories'] } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.integration.id;
  const first = await h.sync(id);
  assert.equal(first.status, 'completed', JSON.stringify(first));
  await until('a hook on the administered repository', () => hooks.created.length === 1).catch(async (e) => {
    console.log('# realtime:', JSON.stringify(await h.realtime(id)), svc.logs.filter((l) => /realtime|github/i.test(l)).slice(-10).join('\n'));
    throw e;
  });
  assert.equal(hooks.created[0].repo, 'rt-octo/admin-repo');
  assert.equal(hooks.created[0].secret, secret);
  assert.equal(hooks.created[0].url, `${svc.url}/webhooks/github`);
  assert.deepEqual(hooks.created[0].events.sort(), ['issues', 'pull_request', 'push']);
  const rt = await until('the note', async () => { const r = await h.realtime(id); return r.note && r; });
  assert.equal(rt.mode, 'poll', 'the other repository is polled every 15 minutes');
  assert.match(rt.note, /polled every 15 minutes/);
  await h.idle(id);
  const del = await h.api('DELETE', `/api/integrations/${id}`);
  assert.equal(del.status, 200);
  assert.deepEqual(hooks.deleted, [{ repo: 'rt-octo/admin-repo', id: hooks.created[0].id }]);
  // A hook to this deployment that already exists (its record lost) is adopted, not duplicated.
  const manual = hooks.add('rt-octo/admin-repo', `${svc.url}/webhooks/github`);
  const again = await h.api('POST', '/api/integrations', { service: 'github', credentials: { access_token: token }, config: { syncFrequency: 'realtime', entities: ['repositories'] } });
  assert.equal(again.status, 201, JSON.stringify(again.body));
  await h.sync(again.body.integration.id);
  await until('the hook adopted', async () => (await (await svc.db()).prepare("SELECT COUNT(*) AS n FROM realtime_watches WHERE integration_id = ?1 AND kind = 'github' AND resource_id = ?2").bind(again.body.integration.id, String(manual.id)).first()).n === 1);
  assert.equal(hooks.created.length, 1, 'no second hook');
  await h.idle(again.body.integration.id);
  assert.equal((await h.api('DELETE', `/api/integrations/${again.body.integration.id}`)).status, 200);
  assert.deepEqual(hooks.deleted.at(-1), { repo: 'rt-octo/admin-repo', id: manual.id });
});
