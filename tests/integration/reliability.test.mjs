// Reliability: an authorization matrix derived from /openapi.json (every operation × anonymous,
// owner, another user, admin) and a soak of mixed concurrent traffic with upstream faults,
// followed by invariant checks on D1 and the Durable Objects.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';
import { startFakeTelegram } from '../lib/fake-telegram.mjs';

const HOOK = 'reliability-webhook-secret';
const BOT = '555555555:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';

test('reliability', async (t) => {
  const gh = await startFakeGitHub(t);
  const tg = await startFakeTelegram(t);
  const svc = await startService(t, {
    upstreams: { github: gh.api, githubWeb: gh.web, telegram: tg.url },
    vars: { GITHUB_WEBHOOK_SECRET: HOOK, SYNC_REQUEST_BUDGET: '1000', PUBLIC_URL: 'https://svc.example.com', SLACK_CLIENT_ID: 'rel.slack', SLACK_CLIENT_SECRET: 'reliability-slack-secret' },
  });
  const owner = await svc.createUser({ email: 'owner@example.com' });
  const other = await svc.createUser({ email: 'other@example.com' });
  const admin = await svc.createUser({ email: 'admin@example.com', admin: true });
  const ownerGh = 'gho_owner_reliability_token_00000000';
  knownSecrets.add(ownerGh);
  gh.addUser(ownerGh, { id: 9001, login: 'owner' });
  gh.addRepo('owner/app');
  gh.addIssues('owner/app', 30);
  tg.addBot(BOT, 555555555, 'rel_bot');
  knownSecrets.add(BOT);
  const as = (u, method, path, body) => svc.request(method, path, { token: u?.token, body });
  // Every page of a paged session log (limit ≤ 100, opaque cursor).
  const all = async (u, path, key) => {
    const items = [];
    let cursor = '';
    for (;;) {
      const r = await as(u, 'GET', `${path}?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      items.push(...r.body[key]);
      if (!r.body.hasMore) return items;
      cursor = r.body.cursor;
    }
  };

  // Resources owned by `owner`.
  await as(owner, 'PUT', '/api/me/github-token', { token: ownerGh });
  const session = (await as(owner, 'POST', '/api/sessions', { workspace: 'w', repoUrl: 'owner/app', branch: 'main' })).body.session;
  const child = (await as(owner, 'POST', '/api/sessions', { workspace: 'c', parentSessionId: session.id })).body.session;
  const tokenRow = (await as(owner, 'POST', '/api/api-tokens', { name: 'matrix' })).body;
  svc.shownOnce(tokenRow.token);
  const binding = (await as(owner, 'POST', '/api/channels/bindings', { sessionId: session.id, channelType: 'telegram', channelId: '4242' })).body.binding;
  const integ = (await as(owner, 'POST', '/api/integrations', { service: 'github', credentials: { access_token: ownerGh }, config: { syncFrequency: 'manual' } })).body.integration;
  const sync = (await as(owner, 'POST', `/api/integrations/${integ.id}/sync`, {})).body;
  await as(owner, 'POST', '/api/prompt', { content: 'queued', channelType: 'web', channelId: session.id });
  const prompt = (await as(owner, 'GET', `/api/sessions/${session.id}/queue`)).body.prompts[0];
  const repo = (await as(admin, 'POST', '/api/admin/repos', { fullName: 'org/matrix' })).body;
  const persona = (await as(admin, 'POST', '/api/admin/personas', { name: 'Matrix' })).body;
  const tgSetup = await as(owner, 'POST', '/api/me/telegram', { botToken: BOT });
  svc.shownOnce(tgSetup.body.pairingCode, 2); // the code and the t.me link
  await svc.request('POST', `/telegram/webhook/${owner.userId}`, {
    body: { update_id: 1, message: { message_id: 1, date: 1, chat: { id: 4242, type: 'private' }, from: { id: 4242, first_name: 'S' }, text: `/start ${tgSetup.body.pairingCode}` } },
    headers: { 'x-telegram-bot-api-secret-token': tg.webhooks.get(BOT).secret_token },
  });
  assert.ok(session && child && binding && integ && sync.syncId && prompt && repo.id && persona.id);

  const doc = (await svc.request('GET', '/openapi.json')).body;
  const ids = (path) => {
    const byPrefix = [
      ['/api/sessions/{id}', session.id], ['/api/api-tokens/{id}', tokenRow.id], ['/api/channels/bindings/{id}', binding.id],
      ['/api/integrations/{id}', integ.id], ['/api/admin/repos/{id}', repo.id], ['/api/admin/personas/{id}', persona.id],
    ];
    const id = byPrefix.find(([p]) => path.startsWith(p))?.[1];
    return path.replace('{id}', id ?? 'x').replace('{syncId}', sync.syncId).replace('{promptId}', prompt.id)
      .replace('{service}', path.includes('/integrations/') ? 'github' : 'matrix-service').replace('{type}', 'issues')
      .replace('{owner}', 'owner').replace('{repo}', 'app').replace('{userId}', owner.userId);
  };
  const missing = (path) => ids(path).replace(session.id, randomUUID()).replace(tokenRow.id, randomUUID()).replace(binding.id, randomUUID())
    .replace(integ.id, randomUUID()).replace(sync.syncId, randomUUID()).replace(prompt.id, randomUUID());
  const ops = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (method === 'parameters') continue;
      ops.push({ path, method: method.toUpperCase(), op, secured: (op.security ?? []).length > 0, adminOnly: Boolean(op.responses?.['403']) && /^\/api\/(admin|slack)\//.test(path) });
    }
  }
  assert.ok(ops.length >= 60, `${ops.length} operations`);
  assert.ok(ops.filter((o) => o.adminOnly).length >= 10 && ops.filter((o) => o.secured).length >= 55, 'the matrix covers user and admin operations');

  await t.test('authorization matrix over every documented operation', async () => {
    const problems = [];
    const body = (m) => (m === 'GET' || m === 'DELETE' ? undefined : {});
    for (const o of ops.filter((x) => x.secured)) {
      const url = ids(o.path);
      const anon = await as(null, o.method, url, body(o.method));
      if (anon.status !== 401) problems.push(`anonymous ${o.method} ${o.path} → ${anon.status}`);
      if (o.adminOnly) {
        for (const u of [owner, other]) {
          const r = await as(u, o.method, url, body(o.method));
          if (r.status !== 403) problems.push(`member ${o.method} ${o.path} → ${r.status}`);
        }
        if (o.method !== 'DELETE') {
          const r = await as(admin, o.method, url, body(o.method));
          if ([401, 403].includes(r.status) || r.status >= 500) problems.push(`admin ${o.method} ${o.path} → ${r.status}`);
        }
        continue;
      }
      // Another user on the owner's resources answers exactly like a missing resource.
      if (/\{(id|syncId|promptId)\}/.test(o.path)) {
        const r = await as(other, o.method, url, body(o.method));
        const m = await as(other, o.method, missing(o.path), body(o.method));
        if (r.status >= 200 && r.status < 300) problems.push(`other user ${o.method} ${o.path} → ${r.status} (access!)`);
        if (r.status !== m.status || r.body?.code !== m.body?.code) problems.push(`other user ${o.method} ${o.path} → ${r.status} ${r.body?.code}, missing → ${m.status} ${m.body?.code}`);
      }
      if (o.method !== 'DELETE') {
        const r = await as(owner, o.method, url, body(o.method));
        if ([401, 403].includes(r.status) && !(o.path.includes('/integrations/{id}') && o.method === 'PATCH')) problems.push(`owner ${o.method} ${o.path} → ${r.status}`);
        if (r.status === 500) problems.push(`owner ${o.method} ${o.path} → 500`);
      }
    }
    assert.deepEqual(problems, []);
    // Nothing of the owner's was changed by the others' attempts.
    assert.equal((await as(owner, 'GET', `/api/sessions/${session.id}`)).status, 200);
    assert.equal((await as(owner, 'GET', `/api/integrations/${integ.id}`)).status, 200);
    assert.ok((await as(owner, 'GET', '/api/channels/bindings')).body.bindings.some((b) => b.id === binding.id));
    assert.equal((await svc.request('GET', '/api/me', { token: tokenRow.token })).status, 200);
  });

  await t.test('soak: 2,000 mixed concurrent requests with faults keep every invariant', async () => {
    await as(owner, 'POST', `/api/sessions/${session.id}/queue/clear`, {});
    const secret = tg.webhooks.get(BOT).secret_token;
    const pushes = new Map(); // delivery id → commits
    const accepted = new Set();
    const statuses = new Map();
    let updateId = 10_000;
    const telegramIds = new Set();
    const jobs = [];
    for (let i = 0; i < 2000; i++) {
      const kind = i % 5;
      if (kind === 0 || kind === 1) {
        jobs.push(async () => {
          const r = await as(owner, 'POST', '/api/prompt', { content: `soak ${i}`, channelType: 'web', channelId: session.id });
          if (r.status === 200 && r.body.promptId) accepted.add(r.body.promptId);
          return r.status;
        });
      } else if (kind === 2) {
        const id = i % 10 === 2 ? updateId : ++updateId; // every other one is a redelivery
        telegramIds.add(id);
        jobs.push(() => svc.request('POST', `/telegram/webhook/${owner.userId}`, {
          body: { update_id: id, message: { message_id: id, date: 1, chat: { id: 4242, type: 'private' }, from: { id: 4242, first_name: 'S' }, text: `tg ${id}` } },
          headers: { 'x-telegram-bot-api-secret-token': secret },
        }).then((r) => r.status));
      } else if (kind === 3) {
        const delivery = i % 10 === 3 && pushes.size ? [...pushes.keys()].at(-1) : randomUUID();
        const n = pushes.get(delivery) ?? 1 + (i % 3);
        pushes.set(delivery, n);
        const raw = JSON.stringify({ ref: 'refs/heads/main', after: createHash('sha1').update(delivery).digest('hex'), repository: { id: gh.repos.get('owner/app').id, full_name: 'owner/app' }, sender: { id: 9001 }, commits: Array.from({ length: n }, (_, k) => ({ id: `${delivery}-${k}` })) });
        jobs.push(() => svc.request('POST', '/webhooks/github', {
          raw, headers: { 'content-type': 'application/json', 'x-github-event': 'push', 'x-github-delivery': delivery, 'x-hub-signature-256': `sha256=${createHmac('sha256', HOOK).update(raw).digest('hex')}` },
        }).then((r) => r.status));
      } else {
        if (i % 50 === 4) gh.fake.fault(/\/issues$/, { status: 503, json: { message: 'unavailable' } });
        jobs.push(() => as(owner, 'POST', `/api/integrations/${integ.id}/sync`, { fullSync: i % 2 === 0 }).then((r) => r.status));
      }
    }
    let next = 0;
    await Promise.all(Array.from({ length: 20 }, async () => {
      while (next < jobs.length) {
        const job = jobs[next++];
        const s = await job();
        statuses.set(s, (statuses.get(s) ?? 0) + 1);
      }
    }));
    assert.ok(![...statuses.keys()].some((s) => s >= 500), JSON.stringify([...statuses]));
    // Let background syncs finish, then check the invariants.
    const db = await svc.db();
    for (let i = 0; i < 100; i++) {
      const { n } = await db.prepare("SELECT COUNT(*) AS n FROM sync_logs WHERE status IN ('pending', 'running')").first();
      if (n === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal((await db.prepare("SELECT COUNT(*) AS n FROM sync_logs WHERE status IN ('pending', 'running')").first()).n, 0, 'no sync left running');
    const queue = await all(owner, `/api/sessions/${session.id}/queue`, 'prompts');
    const ids = queue.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'no prompt twice');
    for (const id of accepted) assert.ok(ids.includes(id), `accepted prompt ${id} stored`);
    const messages = await all(owner, `/api/sessions/${session.id}/messages`, 'messages');
    const tgTexts = messages.filter((m) => m.channelType === 'telegram').map((m) => m.content);
    assert.equal(tgTexts.length, telegramIds.size, 'each Telegram update acted on once');
    assert.equal(new Set(tgTexts).size, tgTexts.length);
    assert.equal(messages.filter((m) => m.channelType === 'web' && m.content.startsWith('soak ')).length, accepted.size);
    const expected = [...pushes.values()].reduce((a, b) => a + b, 0);
    const gs = (await as(owner, 'GET', `/api/sessions/${session.id}/git-state`)).body.gitState;
    assert.equal(gs.commitCount, expected, 'each push delivery counted once');
    // No entity half-written in any integration's object: every row's data is a JSON object.
    for (const { id } of (await db.prepare('SELECT id FROM integrations').all()).results) {
      const data = await svc.integrationData(id);
      for (const type of ['repositories', 'issues', 'pull_requests', 'commits', 'messages', 'threads', 'labels', 'drafts', 'calendars', 'events']) {
        const rows = (await data('entities', { entity: type, after: '', includeDeleted: true, limit: 1000 })).body.rows;
        for (const r of rows) assert.equal(typeof JSON.parse(r.data), 'object', `${type} ${r.external_id}`);
      }
    }
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
