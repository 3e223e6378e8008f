// Full-text search of synced entities (README, "Search"): GitHub issues, commits and repositories,
// Gmail messages and Calendar events synced from the fakes are found by words of their text;
// the index follows updates (sync, webhook, action), deletions (a full sync's sweep, an
// integration's removal); another user's entities never appear; hostile query syntax answers
// 200 or 400, never 500.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';
import { startFakeGoogle } from '../lib/fake-google.mjs';
import { addGmail, rawMessage } from '../lib/fake-gmail.mjs';
import { addFakeCalendar } from '../lib/fake-calendar.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Waits (up to 10 s) for what the queue delivers after a response. */
async function eventually(check) {
  for (let i = 0; i < 200 && !(await check()); i++) await sleep(50);
}
const HOOK = 'search-webhook-secret';
const ME = 'alice.search@gmail.test';

test('full-text search of synced entities', async (t) => {
  const gh = await startFakeGitHub(t);
  const g = await startFakeGoogle(t);
  const mail = addGmail(g);
  const cal = addFakeCalendar(g);
  const svc = await startService(t, {
    upstreams: { github: gh.api, githubWeb: gh.web },
    vars: { ...g.vars(), GITHUB_WEBHOOK_SECRET: HOOK, SYNC_REQUEST_BUDGET: '1000' },
  });
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  const admin = await svc.createUser({ email: 'admin@example.com', admin: true });
  const api = (method, path, body, user = alice) => svc.request(method, path, { token: user.token, body });
  const TOKENS = { alice: 'gho_search_alice_token_000000000000', bob: 'gho_search_bob_token_00000000000000' };
  for (const [login, tok] of Object.entries(TOKENS)) {
    knownSecrets.add(tok);
    gh.addUser(tok, { id: login === 'alice' ? 11 : 12, login });
  }
  const repo = gh.addRepo('alice/engine', { description: 'Difference engine firmware' });
  const issues = gh.addIssues('alice/engine', 4);
  Object.assign(issues[0], { title: 'Flux capacitor overheats', body: 'The flux capacitor overheats after 88 minutes of use.' });
  Object.assign(issues[1], { title: 'Zebra stripes render wrong', body: 'Stripes on the zebra crossing sprite are inverted.' });
  Object.assign(issues[2], { title: 'Crème brûlée recipe', body: 'Caramelise the sugar with a torch.' });
  Object.assign(issues[3], { title: 'Unrelated', body: 'Nothing to see here.' });
  gh.addCommits('alice/engine', 2);
  gh.commits.get('alice/engine')[0].commit.message = 'Tune the gyroscope damping\n\nLonger explanation.';
  // Bob's own repository mentions the same words: his entities must never show in Alice's results.
  gh.addRepo('bob/secret');
  Object.assign(gh.addIssues('bob/secret', 1)[0], { title: 'Private notes', body: 'flux capacitor zebra gyroscope' });

  const waitSync = async (id, syncId, user) => {
    for (let i = 0; i < 600; i++) {
      const r = await api('GET', `/api/integrations/${id}/sync/${syncId}`, undefined, user);
      if (['completed', 'failed'].includes(r.body.status)) return r.body;
      await sleep(50);
    }
    throw new Error('sync stuck');
  };
  const sync = async (id, body = {}, user = alice) => {
    const r = await api('POST', `/api/integrations/${id}/sync`, body, user);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    const done = await waitSync(id, r.body.syncId, user);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    return done;
  };
  const connect = async (user, body) => {
    const r = await api('POST', '/api/integrations', { config: { syncFrequency: 'manual' }, ...body }, user);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.integration;
  };
  const search = (id, query, user = alice) => api('GET', `/api/integrations/${id}/search?${new URLSearchParams(query)}`, undefined, user);
  const ids = async (id, q, extra = {}, user = alice) => {
    const r = await search(id, { q, ...extra }, user);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.results.map((x) => x.externalId);
  };

  const github = await connect(alice, { service: 'github', credentials: { access_token: TOKENS.alice } });
  const bobGithub = await connect(bob, { service: 'github', credentials: { access_token: TOKENS.bob } });

  await t.test('synced GitHub entities are found by the words of their text, best match first', async () => {
    // The fake shows every repository to every token: Alice's integration holds Bob's too.
    await sync(github.id, { fullSync: true });
    const r = await search(github.id, { q: 'capacitor' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body).sort(), ['hasMore', 'results']);
    assert.equal(r.body.hasMore, false);
    const first = r.body.results[0];
    assert.deepEqual(Object.keys(first).sort(), ['externalId', 'modifiedAt', 'snippet', 'title', 'type']);
    assert.deepEqual([first.type, first.externalId, first.title], ['issues', 'alice/engine#1', 'Flux capacitor overheats']);
    assert.match(first.snippet, /\*\*capacitor\*\*/);
    assert.match(first.modifiedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    // The title weighs more than the body: the issue whose title has the word ranks first.
    assert.deepEqual(r.body.results.map((x) => x.externalId), ['alice/engine#1', 'bob/secret#1']);
    assert.deepEqual(await ids(github.id, 'stripes inverted'), ['alice/engine#2'], 'every word must match');
    assert.deepEqual(await ids(github.id, 'stripes nonexistentword'), []);
    assert.deepEqual(await ids(github.id, 'creme brulee'), ['alice/engine#3'], 'diacritics and case ignored');
    assert.deepEqual(await ids(github.id, '"flux capacitor overheats"'), ['alice/engine#1']);
    assert.deepEqual(await ids(github.id, '"overheats flux"'), [], 'a phrase is in order');
    assert.deepEqual(await ids(github.id, 'capaci*', { type: 'issues' }), ['alice/engine#1', 'bob/secret#1']);
    assert.deepEqual((await ids(github.id, 'caramelise OR inverted')).sort(), ['alice/engine#2', 'alice/engine#3']);
    assert.deepEqual(await ids(github.id, 'gyroscope', { type: 'commits' }), [`alice/engine@${gh.commits.get('alice/engine')[0].sha}`], 'commit messages');
    assert.deepEqual(await ids(github.id, 'firmware'), [String(repo.id)], 'repository descriptions');
    const byName = await search(github.id, { q: 'alice/engine', type: 'repositories' });
    assert.equal(byName.body.results[0].title, 'alice/engine');
  });

  await t.test('pages: limit and cursor', async () => {
    const all = await ids(github.id, 'text OR stripes OR capacitor OR caramelise OR nothing', { limit: 100 });
    assert.ok(all.length >= 5, all.join());
    const seen = [];
    let cursor;
    let pages = 0;
    do {
      const r = await search(github.id, { q: 'text OR stripes OR capacitor OR caramelise OR nothing', limit: 2, ...(cursor ? { cursor } : {}) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(r.body.results.length <= 2);
      seen.push(...r.body.results.map((x) => x.externalId));
      cursor = r.body.hasMore ? r.body.cursor : undefined;
      assert.equal(r.body.hasMore, 'cursor' in r.body);
      pages++;
    } while (cursor);
    assert.deepEqual(seen, all);
    assert.equal(pages, Math.ceil(all.length / 2));
  });

  await t.test('an update changes what matches (sync, webhook, action)', async () => {
    Object.assign(issues[0], { body: 'The warp drive hums at night.', updated_at: gh.tick() });
    await sync(github.id);
    assert.deepEqual(await ids(github.id, 'minutes'), [], 'the old body no longer matches');
    assert.deepEqual(await ids(github.id, 'warp drive'), ['alice/engine#1']);
    assert.deepEqual(await ids(github.id, 'capacitor'), ['alice/engine#1', 'bob/secret#1'], 'the title still does');

    // A webhook delivery updates the entity (and so the index): through the outbox and the queue,
    // into each holding integration's object, within moments.
    Object.assign(issues[1], { title: 'Zebra stripes fixed', body: 'Now a quokka renders instead.', updated_at: gh.tick() });
    const payload = JSON.stringify({ action: 'edited', repository: { id: repo.id, full_name: 'alice/engine' }, issue: issues[1] });
    const hook = await svc.request('POST', '/webhooks/github', {
      raw: payload,
      headers: { 'content-type': 'application/json', 'x-github-event': 'issues', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': `sha256=${createHmac('sha256', HOOK).update(payload).digest('hex')}` },
    });
    assert.equal(hook.status, 200, hook.text);
    await eventually(async () => (await ids(github.id, 'quokka')).length === 1);
    assert.deepEqual(await ids(github.id, 'quokka'), ['alice/engine#2']);
    assert.deepEqual(await ids(github.id, 'inverted'), []);

    // An action's created entity is stored, and so searchable, at once.
    const created = await api('POST', `/api/integrations/${github.id}/actions/create_issue`, { repository: 'alice/engine', title: 'Axolotl habitat', body: 'Needs a colder tank.' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.deepEqual(await ids(github.id, 'axolotl tank'), [`alice/engine#${created.body.result.number}`]);
  });

  await t.test('a deleted entity disappears from results', async () => {
    gh.issues.set('alice/engine', gh.issues.get('alice/engine').filter((i) => i.number !== 3));
    await sync(github.id, { fullSync: true });
    const gone = await api('GET', `/api/integrations/${github.id}/entities/issues?limit=100`);
    assert.equal(gone.body.entities.find((e) => e.id === 'alice/engine#3')._sync.deleted, true, 'the sweep marked it deleted');
    assert.deepEqual(await ids(github.id, 'caramelise'), []);
    // Back upstream, back in the index.
    gh.issues.get('alice/engine').push({ ...issues[2], updated_at: gh.tick() });
    await sync(github.id, { fullSync: true });
    assert.deepEqual(await ids(github.id, 'caramelise'), ['alice/engine#3']);
  });

  await t.test('Gmail messages by subject, sender and text; Calendar events by summary and description', async () => {
    const m1 = await mail.addMessage(ME, { raw: rawMessage({ from: 'Ada Lovelace <ada@analytical.example>', to: ME, subject: 'Analytical engine notes', text: 'The Bernoulli numbers program is attached.' }) });
    const m2 = await mail.addMessage(ME, { raw: rawMessage({ from: 'Charles Babbage <cb@example.com>', to: ME, subject: 'Lunch', text: 'Meet at the pavilion.' }) });
    const grant = () => { const c = g.grant(ME); return { ...c, expires_at: Number(c.expires_at) * 1000 }; };
    const gmail = await connect(alice, { service: 'gmail', credentials: grant() });
    await sync(gmail.id, { fullSync: true });
    assert.deepEqual(await ids(gmail.id, 'bernoulli', { type: 'messages' }), [m1.id], 'the text');
    assert.deepEqual(await ids(gmail.id, 'lovelace', { type: 'messages' }), [m1.id], 'the sender');
    assert.deepEqual(await ids(gmail.id, 'ada@analytical.example', { type: 'messages' }), [m1.id], 'the sender\'s address');
    assert.deepEqual(await ids(gmail.id, 'lunch', { type: 'messages' }), [m2.id], 'the subject');
    const hit = (await search(gmail.id, { q: 'pavilion', type: 'messages' })).body.results[0];
    assert.deepEqual([hit.title, hit.type], ['Lunch', 'messages']);
    assert.match(hit.snippet, /\*\*pavilion\*\*/);

    cal.addAccount(ME);
    const ev = cal.addEvent(ME, 'primary', { summary: 'Retrospective', description: 'Discuss the xylophone budget', location: 'Room Kilimanjaro', start: { dateTime: '2026-03-02T10:00:00Z' }, end: { dateTime: '2026-03-02T11:00:00Z' } });
    const calendar = await connect(alice, { service: 'google_calendar', credentials: grant() });
    await sync(calendar.id, { fullSync: true });
    // Events are stored under their calendar and id.
    const evKey = `${ME}/${ev.id}`;
    assert.deepEqual(await ids(calendar.id, 'xylophone'), [evKey]);
    assert.deepEqual(await ids(calendar.id, 'retrospective', { type: 'events' }), [evKey]);
    assert.deepEqual(await ids(calendar.id, 'kilimanjaro'), [evKey]);
    // Cancelled upstream: marked deleted by the incremental run, gone from the results.
    cal.cancel(ME, 'primary', ev.id);
    await sync(calendar.id);
    assert.deepEqual(await ids(calendar.id, 'xylophone'), []);
    for (const v of [...g.accessTokens.keys(), ...g.refreshTokens.keys()]) knownSecrets.add(v);
  });

  await t.test('another user\'s entities never appear; org scope reads like the entities route', async () => {
    // An org-scope integration is searchable by members, as its entities are readable.
    const ADMIN = 'gho_search_admin_token_00000000000';
    knownSecrets.add(ADMIN);
    gh.addUser(ADMIN, { id: 13, login: 'root' });
    const shared = await connect(admin, { service: 'github', credentials: { access_token: ADMIN }, config: { syncFrequency: 'manual', entities: ['repositories', 'issues'] } });
    assert.deepEqual((await search(shared.id, { q: 'quokka' }, bob)).status, 404, 'not yet shared');
    assert.equal((await api('PATCH', `/api/integrations/${shared.id}`, { scope: 'org' }, admin)).status, 200);
    await sync(shared.id, { fullSync: true }, admin);
    assert.deepEqual(await ids(shared.id, 'quokka', {}, bob), ['alice/engine#2']);
    assert.equal((await api('GET', `/api/integrations/${shared.id}/entities/issues`, undefined, bob)).status, 200);

    // Bob's integration syncs a new issue: it is his alone (Alice's integration has not synced since).
    Object.assign(gh.addIssues('bob/secret', 1).at(-1), { title: 'Inventory', body: 'Narwhal tusk inventory.' });
    await sync(bobGithub.id, { fullSync: true }, bob);
    assert.deepEqual(await ids(bobGithub.id, 'narwhal', {}, bob), ['bob/secret#2']);
    assert.deepEqual(await ids(github.id, 'narwhal'), [], 'Bob\'s row never shows in Alice\'s results');
    // Both integrations hold bob/secret#1: each search answers its own row, once.
    assert.deepEqual(await ids(github.id, 'gyroscope', { type: 'issues' }), ['bob/secret#1']);
    assert.deepEqual(await ids(bobGithub.id, 'gyroscope', { type: 'issues' }, bob), ['bob/secret#1']);
    for (const user of [alice, bob]) {
      const other = user === alice ? bobGithub.id : github.id;
      const r = await search(other, { q: 'capacitor' }, user);
      assert.deepEqual([r.status, r.body.code], [404, 'NOT_FOUND'], 'another user\'s integration answers like a missing one');
    }
    const missing = await search(randomUUID(), { q: 'capacitor' }, bob);
    assert.deepEqual([missing.status, missing.body.code], [404, 'NOT_FOUND']);

    // A webhook delivery for bob/secret updates every integration holding it, each in its own row.
    const edited = { ...gh.issues.get('bob/secret')[0], body: 'only a wombat now', updated_at: gh.tick() };
    const payload = JSON.stringify({ action: 'edited', repository: { id: gh.repos.get('bob/secret').id, full_name: 'bob/secret' }, issue: edited });
    const hook = await svc.request('POST', '/webhooks/github', {
      raw: payload,
      headers: { 'content-type': 'application/json', 'x-github-event': 'issues', 'x-github-delivery': randomUUID(), 'x-hub-signature-256': `sha256=${createHmac('sha256', HOOK).update(payload).digest('hex')}` },
    });
    assert.equal(hook.status, 200, hook.text);
    await eventually(async () => (await ids(bobGithub.id, 'wombat', {}, bob)).length === 1 && (await ids(github.id, 'wombat')).length === 1);
    assert.deepEqual(await ids(bobGithub.id, 'wombat', {}, bob), ['bob/secret#1']);
    assert.deepEqual(await ids(github.id, 'wombat'), ['bob/secret#1']);
    assert.deepEqual(await ids(github.id, 'gyroscope', { type: 'issues' }), [], 'the old body is gone');
  });

  await t.test('hostile query syntax answers 200 or 400, never 500', async () => {
    const hostile = [
      '"', '""', '"unterminated', 'a"b"c', 'OR', 'AND', 'NOT', 'NOT capacitor', 'capacitor NOT', 'capacitor AND', 'OR capacitor OR',
      '(', ')', '((capacitor', 'capacitor))', 'title:capacitor', 'k:x', '{title body}:capacitor', '-capacitor', '+capacitor', '^capacitor',
      'NEAR(flux capacitor, 1)', 'NEAR/2', '*', '**', 'capacitor*', '*capacitor', 'c*', '\'', '\\', ';', '; DROP TABLE synced_entities; --',
      '\u0000', '\u0002capacitor\u0003', 'rowid = 1', 'entity_search', 'i' + github.id.replaceAll('-', ''), '"a" "b" OR "c"', ':', '{', '}', '[', ']',
      '日本語', '🙂', 'x'.repeat(500), 'x'.repeat(501), 'a '.repeat(300), 'e\u0301', '\u200b', '%', '%25', '&', '#',
    ];
    const seen = new Set();
    for (const q of hostile) {
      const r = await search(github.id, { q });
      assert.ok([200, 400].includes(r.status), `${JSON.stringify(q)} → ${r.status} ${r.text}`);
      if (r.status === 400) assert.equal(r.body.code, 'VALIDATION_ERROR');
      seen.add(r.status);
    }
    assert.deepEqual([...seen].sort(), [200, 400]);
    // The integration token in a query matches nothing: the k column is not searchable by users.
    assert.deepEqual(await ids(github.id, 'i' + github.id.replaceAll('-', '')), []);
    assert.deepEqual(await ids(github.id, 'NOT capacitor'), [], 'NOT is a word here, and no entity has it');
    assert.deepEqual(await ids(github.id, '(capacitor'), ['alice/engine#1'], 'a parenthesis only separates');
    assert.deepEqual(await ids(github.id, 'capacitor))'), await ids(github.id, 'capacitor'));
    for (const [query, field] of [[{}, 'q'], [{ q: '' }, 'q'], [{ q: '!!!' }, 'q'], [{ q: 'x', limit: '0' }, 'limit'], [{ q: 'x', limit: '101' }, 'limit'],
      [{ q: 'x', type: 'nope' }, 'type'], [{ q: 'x', cursor: 'garbage' }, 'cursor']]) {
      const r = await search(github.id, query);
      assert.deepEqual([r.status, r.body.code, r.body.details?.[0]?.field], [400, 'VALIDATION_ERROR', field], JSON.stringify(query));
    }
    assert.equal((await svc.request('GET', `/api/integrations/${github.id}/search?q=x`)).status, 401);
  });

  await t.test('deleting an integration drops its entities and their index', async () => {
    const data = await svc.integrationData(bobGithub.id);
    const own = (await data('stats')).body.entities;
    assert.ok(own > 0);
    assert.equal((await data('search', { query: '"wombat"', limit: 10 })).body.hits.length, 1);
    assert.equal((await api('DELETE', `/api/integrations/${bobGithub.id}`, undefined, bob)).status, 200);
    for (let i = 0; i < 200 && (await data('stats')).body.entities > 0; i++) await sleep(50);
    assert.equal((await data('stats')).body.entities, 0, 'the object was dropped');
    assert.equal((await data('search', { query: '"wombat"', limit: 10 })).body.hits.length, 0);
    // Alice's copy of the shared repository is hers: still found.
    assert.deepEqual(await ids(github.id, 'wombat'), ['bob/secret#1']);
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
