// The data plane: each integration's synced entities, search index and checkpoints live in
// its own IntegrationData Durable Object. Covered here: a database of the previous release with
// data in D1 is moved into the objects through the queue, every entity readable and searchable
// exactly once during and after the move, and still after the old tables are dropped; a stale
// lease's commit is refused; a page committed twice leaves one state; a worker that dies between
// the object commit and the D1 progress loses nothing; deleting an integration drops its data;
// `storage` on the integration; `GET /api/search` across the caller's integrations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';
import { root } from '../../scripts/lib.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, tries = 400) {
  for (let i = 0; i < tries; i++) {
    const v = await fn();
    if (v) return v;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Every entity of a type through the paged API, in order. */
async function allEntities(svc, user, id, type) {
  const out = [];
  let cursor;
  for (;;) {
    const q = new URLSearchParams({ limit: '37', ...(cursor ? { cursor } : {}) });
    const r = await svc.request('GET', `/api/integrations/${id}/entities/${type}?${q}`, { token: user.token });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out.push(...r.body.entities);
    if (!r.body.hasMore) return out;
    cursor = r.body.cursor;
  }
}

/** Every result of a search through the paged API. */
async function allResults(svc, user, path, q, extra = {}) {
  const out = [];
  let cursor;
  for (let page = 0; page < 50; page++) {
    const params = new URLSearchParams({ q, limit: '7', ...extra, ...(cursor ? { cursor } : {}) });
    const r = await svc.request('GET', `${path}?${params}`, { token: user.token });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    out.push(...r.body.results);
    if (!r.body.hasMore) return out;
    cursor = r.body.cursor;
  }
  throw new Error('search paging did not end');
}

test('data kept in D1 by the previous release moves into the objects, readable and searchable exactly once throughout', async (t) => {
  const svc = await startService(t, { migrateUpTo: '0014_reconciler.sql' });
  const alice = await svc.createUser({ email: 'alice.move@example.com' });
  const db = await svc.db();
  const now = new Date().toISOString();
  // What the previous release stored: a GitHub integration with repositories and 120 issues
  // (their checkpoints per repository), and a Gmail integration with 45 messages.
  const gh = randomUUID();
  const gmail = randomUUID();
  const stmts = [];
  for (const [id, service] of [[gh, 'github'], [gmail, 'gmail']]) {
    stmts.push(db.prepare(`INSERT INTO integrations (id, user_id, service, config, status, created_at, updated_at)
      VALUES (?1, ?2, ?3, '{"syncFrequency":"manual","entities":[]}', 'active', ?4, ?4)`).bind(id, alice.userId, service, now));
  }
  const entity = (integration, type, externalId, data, parent = '', deleted = null) => db.prepare(
    `INSERT INTO synced_entities (id, integration_id, entity_type, external_id, data, first_seen_at, last_modified_at, synced_at, deleted_at, seen_run, parent)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?6, ?7, 'old-run', ?8)`,
  ).bind(`${integration}:${type}:${externalId}`, integration, type, externalId, JSON.stringify(data), now, deleted, parent);
  for (const [rid, name] of [[101, 'alice/engine'], [102, 'alice/loom']]) {
    stmts.push(entity(gh, 'repositories', String(rid), { full_name: name, name: name.split('/')[1], description: `The ${name} repository` }));
  }
  for (let n = 1; n <= 120; n++) {
    const repo = n % 2 ? 'alice/engine' : 'alice/loom';
    const title = n === 77 ? 'Brass gearbox seizes' : `Issue number ${n}`;
    stmts.push(entity(gh, 'issues', `${repo}#${n}`, { title, body: `Body of ${n}`, number: n, repository: repo }, repo));
  }
  stmts.push(entity(gh, 'issues', 'alice/engine#999', { title: 'Deleted long ago', number: 999 }, 'alice/engine', now));
  for (let n = 1; n <= 45; n++) {
    const subject = n === 12 ? 'Punch cards for the loom' : `Message ${n}`;
    stmts.push(entity(gmail, 'messages', `m${n}`, { subject, from: 'Charles <cb@example.com>', body: `text ${n}`, snippet: `text ${n}` }));
  }
  for (const repo of ['alice/engine', 'alice/loom']) {
    stmts.push(db.prepare(`INSERT INTO sync_checkpoints (integration_id, entity_type, parent, cursor, updated_at) VALUES (?1, 'issues', ?2, ?3, ?4)`)
      .bind(gh, repo, '2026-05-01T00:00:00Z', now));
  }
  stmts.push(db.prepare(`INSERT INTO sync_checkpoints (integration_id, entity_type, parent, cursor, updated_at) VALUES (?1, 'messages', '', '98765', ?2)`).bind(gmail, now));
  await db.batch(stmts);

  // The release with the data plane: its migration marks both integrations as still in D1.
  await svc.upgrade();
  const homes = async () => Object.fromEntries((await (await svc.db()).prepare('SELECT id, data_home FROM integrations').all()).results.map((r) => [r.id, r.data_home]));
  assert.deepEqual(await homes(), { [gh]: 'd1', [gmail]: 'd1' });
  const admin = await svc.createUser({ email: 'admin.move@example.com', admin: true });
  const plane = await svc.request('GET', '/api/admin/data-plane', { token: admin.token });
  assert.deepEqual(plane.body, { remaining: 2, moving: 0 });

  const check = async (phase) => {
    const issues = await allEntities(svc, alice, gh, 'issues');
    const ids = issues.map((e) => e.id);
    assert.equal(ids.length, 121, `${phase}: every issue once (the deleted one included)`);
    assert.equal(new Set(ids).size, ids.length, `${phase}: no duplicates`);
    assert.equal(issues.filter((e) => e._sync.deleted).length, 1, phase);
    const messages = await allEntities(svc, alice, gmail, 'messages');
    assert.equal(new Set(messages.map((e) => e.id)).size, 45, phase);
    const gearbox = await allResults(svc, alice, `/api/integrations/${gh}/search`, 'gearbox');
    assert.deepEqual(gearbox.map((r) => r.externalId), ['alice/engine#77'], `${phase}: search`);
    const body = await allResults(svc, alice, `/api/integrations/${gh}/search`, 'body');
    assert.equal(body.length, 120, `${phase}: every live issue found once by its text`);
    assert.equal(new Set(body.map((r) => r.externalId)).size, 120, phase);
    const across = await allResults(svc, alice, '/api/search', 'loom');
    const found = across.map((r) => `${r.integrationId}/${r.externalId}`).sort();
    assert.deepEqual(found, [`${gh}/102`, `${gmail}/m12`].sort(), `${phase}: across integrations`);
    const stored = await svc.request('GET', `/api/integrations/${gh}`, { token: alice.token });
    assert.equal(stored.body.integration.storage.entities, 122, phase);
  };
  await check('before the move');

  // The minute cron starts the moves; the queue copies 50 entities per step. Reads go on
  // while it runs.
  await (await svc.mf.getWorker()).scheduled({ cron: '* * * * *' });
  let reads = 0;
  await until('the move', async () => {
    await check(`during the move (${JSON.stringify(await homes())})`);
    reads++;
    return Object.values(await homes()).every((h) => h === 'object');
  });
  assert.ok(reads >= 1);
  await check('after the move');
  assert.deepEqual((await svc.request('GET', '/api/admin/data-plane', { token: admin.token })).body, { remaining: 0, moving: 0 });

  // The checkpoints came along: the next incremental run starts where the old one stopped.
  const ghData = await svc.integrationData(gh);
  const started = await ghData('start', { entity: 'issues', parent: { entity: 'repositories', key: '$.full_name' } });
  assert.equal(started.status, 200);
  assert.deepEqual(started.body.checkpoints.map((c) => c.parent).sort(), ['alice/engine', 'alice/loom']);
  assert.deepEqual(started.body.parents.map((p) => p.id), ['101', '102']);
  const gmailStart = await (await svc.integrationData(gmail))('start', { entity: 'messages' });
  assert.deepEqual(gmailStart.body.checkpoints, [{ parent: '', cursor: '98765' }]);

  // The next release's migration drops the D1 tables: nothing reads them any more.
  const drop = readFileSync(join(root, 'migrations-next', 'drop_d1_data_plane.sql'), 'utf8')
    .split('\n').filter((l) => !l.startsWith('--')).join('\n').split(';').map((s) => s.trim()).filter(Boolean);
  const d1 = await svc.db();
  await d1.batch(drop.map((s) => d1.prepare(s)));
  await check('after the old tables are dropped');
  assert.deepEqual(svc.leakedSecrets(), []);
});

test('the object fences stale leases and applies a page twice as once', async (t) => {
  const svc = await startService(t);
  const id = randomUUID();
  const data = await svc.integrationData(id);
  const page = (epoch, title) => ({
    run: 'r1', epoch, entity: 'issues', now: new Date().toISOString(),
    items: [1, 2, 3].map((n) => ({ e: `o/r#${n}`, d: { title: `${title} ${n}` }, m: '2026-01-01T00:00:00Z', p: 'o/r' })),
    checkpoint: { parent: 'o/r', cursor: '2026-01-01T00:00:00Z' },
  });
  assert.equal((await data('commit', page(5, 'first'))).status, 200);
  const once = (await data('stats')).body;
  assert.equal(once.entities, 3);
  assert.equal((await data('commit', page(5, 'first'))).status, 200, 'the same page again');
  assert.equal((await data('stats')).body.entities, 3, 'counted once');
  const stale = await data('commit', { ...page(4, 'stale'), items: [{ e: 'o/r#9', d: { title: 'stale' }, m: '2030-01-01T00:00:00Z', p: 'o/r' }] });
  assert.equal(stale.status, 409);
  assert.equal(stale.body.code, 'STALE_EPOCH');
  assert.equal((await data('stats')).body.entities, 3, 'nothing of the stale commit was written');
  const rows = (await data('entities', { entity: 'issues', after: '', includeDeleted: true, limit: 10 })).body.rows;
  assert.deepEqual(rows.map((r) => [r.external_id, JSON.parse(r.data).title]), [['o/r#1', 'first 1'], ['o/r#2', 'first 2'], ['o/r#3', 'first 3']]);
  // An older version never overwrites a newer one.
  await data('upsert', { now: new Date().toISOString(), groups: [{ entity: 'issues', items: [{ e: 'o/r#1', d: { title: 'older' }, m: '2025-01-01T00:00:00Z', p: 'o/r' }] }] });
  const again = (await data('entities', { entity: 'issues', after: '', includeDeleted: true, limit: 1 })).body.rows;
  assert.equal(JSON.parse(again[0].data).title, 'first 1');
  assert.equal((await data('commit', page(6, 'newer'))).status, 200, 'a newer epoch is accepted');
  // A dropped object refuses later writes.
  assert.equal((await data('drop')).status, 200);
  assert.equal((await data('stats')).body.entities, 0);
  assert.equal((await data('commit', page(7, 'late'))).status, 410);
  assert.equal((await data('upsert', { now: new Date().toISOString(), groups: [] })).status, 410);
});

test('syncs commit to the object; a worker dying between the object commit and the D1 progress loses nothing; deletion drops the data', async (t) => {
  const gh = await startFakeGitHub(t);
  const svc = await startService(t, {
    upstreams: { github: gh.api, githubWeb: gh.web },
    vars: { FAULT_DIE_AFTER_OBJECT_COMMIT: '1', SYNC_REQUEST_BUDGET: '20' },
  });
  const alice = await svc.createUser({ email: 'alice.plane@example.com' });
  const bob = await svc.createUser({ email: 'bob.plane@example.com' });
  const TOKEN = 'gho_plane_alice_token_0000000000000';
  knownSecrets.add(TOKEN);
  gh.addUser(TOKEN, { id: 31, login: 'alice' });
  gh.addRepo('alice/plane');
  gh.addIssues('alice/plane', 230);
  const api = (method, path, body, user = alice) => svc.request(method, path, { token: user.token, body });
  const created = await api('POST', '/api/integrations', { service: 'github', credentials: { access_token: TOKEN }, config: { syncFrequency: 'manual' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const id = created.body.integration.id;
  const started = await api('POST', `/api/integrations/${id}/sync`, { fullSync: true });
  assert.equal(started.status, 202);
  const done = await until('the sync', async () => {
    const r = await api('GET', `/api/integrations/${id}/sync/${started.body.syncId}`);
    return ['completed', 'failed'].includes(r.body.status) && r.body;
  }, 1200);
  assert.equal(done.status, 'completed', JSON.stringify(done));
  assert.ok(svc.logs.join('').includes('FAULT_DIE_AFTER_OBJECT_COMMIT'), 'the worker died once after an object commit');
  const issues = await allEntities(svc, alice, id, 'issues');
  assert.equal(issues.length, 230);
  assert.equal(new Set(issues.map((e) => e.id)).size, 230);
  assert.equal(done.result.recordsSynced, 231, 'the repository and every issue counted once');
  const one = await api('GET', `/api/integrations/${id}`);
  assert.equal(one.body.integration.storage.entities, 231);
  assert.ok(one.body.integration.storage.bytes > 0);
  // The list stays light: no storage figures there.
  assert.equal((await api('GET', '/api/integrations')).body.integrations[0].storage, undefined);

  // Across integrations: only the caller's own (and org-scope) ones are searched.
  const hits = await allResults(svc, alice, '/api/search', 'issue');
  assert.equal(hits.length, 230);
  assert.ok(hits.every((h) => h.integrationId === id));
  assert.deepEqual((await svc.request('GET', '/api/search?q=issue', { token: bob.token })).body, { results: [], hasMore: false });
  assert.equal((await svc.request('GET', '/api/search', { token: alice.token })).status, 400);
  assert.equal((await svc.request('GET', '/api/search?q=x&cursor=bogus', { token: alice.token })).status, 400);
  assert.equal((await svc.request('GET', `/api/integrations/${id}`, { token: bob.token })).status, 404);

  // Deleting the integration drops its object's data (through the outbox and the queue).
  assert.equal((await api('DELETE', `/api/integrations/${id}`)).status, 200);
  const data = await svc.integrationData(id);
  await until('the drop', async () => (await data('stats')).body.entities === 0);
  assert.equal((await data('upsert', { now: new Date().toISOString(), groups: [] })).status, 410, 'late writes are refused');
  assert.equal((await api('GET', `/api/integrations/${id}`)).status, 404);
  assert.deepEqual(svc.leakedSecrets(), []);
});
