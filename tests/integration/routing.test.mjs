// Channel bindings and POST /api/prompt: CRUD validation, scope keys computed for the caller,
// ownership (another user's key, session or binding reaches nothing), orchestrator fallback.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService } from '../lib/harness.mjs';

test('channel bindings and prompt routing', async (t) => {
  const svc = await startService(t);
  const alice = await svc.createUser({ email: 'alice@example.com', name: 'Alice' });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  const db = await svc.db();
  const mk = async (u) => (await svc.request('POST', '/api/sessions', { token: u.token, body: { workspace: 'w' } })).body.session;
  const queue = async (u, id) => (await svc.request('GET', `/api/sessions/${id}/queue`, { token: u.token })).body.prompts;
  const aliceSession = await mk(alice);
  const bobSession = await mk(bob);
  let tgBinding;

  await t.test('create: any channel type, scope key from the caller, defaults', async () => {
    const r = await svc.request('POST', '/api/channels/bindings', {
      token: alice.token, body: { sessionId: aliceSession.id, channelType: 'telegram', channelId: '-100200300' },
    });
    assert.equal(r.status, 201);
    tgBinding = r.body.binding;
    assert.deepEqual(
      { ...tgBinding, id: undefined, createdAt: undefined },
      { id: undefined, createdAt: undefined, sessionId: aliceSession.id, channelType: 'telegram', channelId: '-100200300',
        scopeKey: `user:${alice.userId}:telegram:-100200300`, queueMode: 'followup', collectDebounceMs: 3000 },
    );
    for (const [channelType, channelId, key] of [
      ['slack', 'T1:C1:1700.1', `user:${alice.userId}:slack:T1:C1:1700.1`],
      ['github', 'octo/my.repo:pr:7', `user:${alice.userId}:github:octo/my.repo:pr:7`],
      ['api', 'nightly-report', `user:${alice.userId}:api:nightly-report`],
    ]) {
      const b = await svc.request('POST', '/api/channels/bindings', { token: alice.token, body: { sessionId: aliceSession.id, channelType, channelId, queueMode: 'steer' } });
      assert.equal(b.status, 201, channelType);
      assert.equal(b.body.binding.scopeKey, key);
    }
    // The same chat bound by another user is that user's own binding.
    const bobTg = await svc.request('POST', '/api/channels/bindings', { token: bob.token, body: { sessionId: bobSession.id, channelType: 'telegram', channelId: '-100200300' } });
    assert.equal(bobTg.status, 201);
    assert.equal(bobTg.body.binding.scopeKey, `user:${bob.userId}:telegram:-100200300`);
  });

  await t.test('create: validation, conflicts and foreign sessions', async () => {
    const bad = [
      {}, { sessionId: aliceSession.id, channelType: 'email', channelId: 'x' },
      { sessionId: aliceSession.id, channelType: 'telegram', channelId: 'abc' },
      { sessionId: aliceSession.id, channelType: 'github', channelId: 'nope' },
      { sessionId: aliceSession.id, channelType: 'api', channelId: '' },
      { sessionId: aliceSession.id, channelType: 'api', channelId: 'x', queueMode: 'later' },
      { sessionId: aliceSession.id, channelType: 'api', channelId: 'x', collectDebounceMs: -5 },
    ];
    for (const body of bad) {
      const r = await svc.request('POST', '/api/channels/bindings', { token: alice.token, body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.code, 'VALIDATION_ERROR');
    }
    const dup = await svc.request('POST', '/api/channels/bindings', { token: alice.token, body: { sessionId: aliceSession.id, channelType: 'telegram', channelId: '-100200300' } });
    assert.equal(dup.status, 409);
    assert.equal(dup.body.code, 'BINDING_EXISTS');
    const foreign = await svc.request('POST', '/api/channels/bindings', { token: alice.token, body: { sessionId: bobSession.id, channelType: 'api', channelId: 'steal' } });
    assert.equal(foreign.status, 404);
    const { n } = await db.prepare("SELECT COUNT(*) AS n FROM channel_bindings WHERE channel_id = 'steal'").first();
    assert.equal(n, 0);
  });

  await t.test('update and delete: own bindings only', async () => {
    const other = await mk(alice);
    const u = await svc.request('PATCH', `/api/channels/bindings/${tgBinding.id}`, { token: alice.token, body: { queueMode: 'collect', collectDebounceMs: 250 } });
    assert.equal(u.status, 200);
    assert.equal(u.body.binding.queueMode, 'collect');
    assert.equal(u.body.binding.collectDebounceMs, 250);
    const moved = await svc.request('PATCH', `/api/channels/bindings/${tgBinding.id}`, { token: alice.token, body: { sessionId: other.id } });
    assert.equal(moved.body.binding.sessionId, other.id);
    const back = await svc.request('PATCH', `/api/channels/bindings/${tgBinding.id}`, { token: alice.token, body: { sessionId: aliceSession.id, queueMode: 'followup' } });
    assert.equal(back.body.binding.sessionId, aliceSession.id);
    assert.equal((await svc.request('PATCH', `/api/channels/bindings/${tgBinding.id}`, { token: alice.token, body: {} })).status, 400);
    assert.equal((await svc.request('PATCH', `/api/channels/bindings/${tgBinding.id}`, { token: alice.token, body: { queueMode: 'x' } })).status, 400);
    assert.equal((await svc.request('PATCH', `/api/channels/bindings/${tgBinding.id}`, { token: alice.token, body: { sessionId: bobSession.id } })).status, 404);
    assert.equal((await svc.request('PATCH', `/api/channels/bindings/${tgBinding.id}`, { token: bob.token, body: { queueMode: 'steer' } })).status, 404);
    assert.equal((await svc.request('DELETE', `/api/channels/bindings/${tgBinding.id}`, { token: bob.token })).status, 404);
    const list = await svc.request('GET', '/api/channels/bindings', { token: bob.token });
    assert.ok(!list.body.bindings.some((b) => b.id === tgBinding.id));
    const tmp = await svc.request('POST', '/api/channels/bindings', { token: alice.token, body: { sessionId: other.id, channelType: 'api', channelId: 'tmp' } });
    assert.deepEqual((await svc.request('DELETE', `/api/channels/bindings/${tmp.body.binding.id}`, { token: alice.token })).body, { success: true });
    assert.equal((await svc.request('DELETE', `/api/channels/bindings/${tmp.body.binding.id}`, { token: alice.token })).status, 404);
  });

  await t.test('/api/prompt routes by the caller\'s own binding, with author and channel', async () => {
    const r = await svc.request('POST', '/api/prompt', { token: alice.token, body: { content: 'hello', channelType: 'telegram', channelId: '-100200300' } });
    assert.equal(r.status, 200);
    assert.equal(r.body.routed, true);
    assert.equal(r.body.sessionId, aliceSession.id);
    assert.equal(r.body.scopeKey, `user:${alice.userId}:telegram:-100200300`);
    const msgs = (await svc.request('GET', `/api/sessions/${aliceSession.id}/messages`, { token: alice.token })).body.messages;
    const m = msgs.at(-1);
    assert.deepEqual([m.content, m.authorId, m.authorName, m.authorEmail, m.channelType, m.channelId],
      ['hello', alice.userId, 'Alice', 'alice@example.com', 'telegram', '-100200300']);
    // Explicit scope key of the caller's own binding works too.
    const k = await svc.request('POST', '/api/prompt', { token: alice.token, body: { content: 'by key', scopeKey: `user:${alice.userId}:api:nightly-report` } });
    assert.equal(k.body.routed, true);
    assert.equal(k.body.queueMode, 'steer');
  });

  await t.test('another user\'s scope key, session or channel reaches nothing of theirs', async () => {
    const before = (await queue(bob, bobSession.id)).length;
    const attempts = [
      { content: 'x', scopeKey: `user:${bob.userId}:telegram:-100200300` },
      { content: 'x', scopeKey: `user:${bob.userId}:manual:${bobSession.id}` },
      { content: 'x', channelType: 'web', channelId: bobSession.id },
    ];
    for (const body of attempts) {
      const r = await svc.request('POST', '/api/prompt', { token: alice.token, body });
      assert.equal(r.status, 200);
      assert.equal(r.body.orchestratorFallback, true);
      assert.notEqual(r.body.sessionId, bobSession.id);
    }
    assert.equal((await queue(bob, bobSession.id)).length, before);
  });

  await t.test('unbound prompts go to the orchestrator: missing, present, unavailable', async () => {
    const none = await svc.request('POST', '/api/prompt', { token: bob.token, body: { content: 'anyone?' } });
    assert.deepEqual(none.body, { routed: false, sessionId: null, scopeKey: null, orchestratorFallback: true, reason: 'orchestrator_not_configured' });
    const orch = (await svc.request('POST', '/api/me/orchestrator', { token: bob.token })).body.session;
    const r = await svc.request('POST', '/api/prompt', {
      token: bob.token,
      body: { content: 'do it', channelType: 'telegram', channelId: '999', queueMode: 'steer',
        attachments: [{ type: 'file', name: 'a.png', data: Buffer.from('img').toString('base64'), mimeType: 'image/png' }] },
    });
    assert.equal(r.body.routed, true);
    assert.equal(r.body.orchestratorFallback, true);
    assert.equal(r.body.sessionId, orch.id);
    assert.equal(r.body.queueMode, 'steer');
    assert.equal(r.body.scopeKey, `user:${bob.userId}:telegram:999`);
    const msgs = (await svc.request('GET', `/api/sessions/${orch.id}/messages`, { token: bob.token })).body.messages;
    assert.equal(msgs.length, 1, 'stored once');
    assert.deepEqual([msgs[0].channelType, msgs[0].channelId, msgs[0].attachments.length, msgs[0].authorId], ['telegram', '999', 1, bob.userId]);
    const q = await queue(bob, orch.id);
    assert.deepEqual(q.map((p) => [p.content, p.queueMode]), [['do it', 'steer']]);
    // A binding whose session is finished falls back to the orchestrator.
    await db.prepare("UPDATE sessions SET status = 'terminated' WHERE id = ?").bind(bobSession.id).run();
    const stale = await svc.request('POST', '/api/prompt', { token: bob.token, body: { content: 'x', channelType: 'telegram', channelId: '-100200300' } });
    assert.equal(stale.body.sessionId, orch.id);
    await db.prepare("UPDATE sessions SET status = 'error' WHERE id = ?").bind(orch.id).run();
    const down = await svc.request('POST', '/api/prompt', { token: bob.token, body: { content: 'x' } });
    assert.deepEqual([down.body.routed, down.body.reason, down.body.sessionId], [false, 'orchestrator_unavailable:error', orch.id]);
  });

  await t.test('prompt validation', async () => {
    for (const body of [{}, { content: '' }, { content: 5 }, { content: 'x'.repeat(100_001) }, { content: 'x', channelType: 'fax' }, { content: 'x', queueMode: 'now' }, { content: 'x', attachments: 'no' }]) {
      const r = await svc.request('POST', '/api/prompt', { token: alice.token, body });
      assert.equal(r.status, 400, JSON.stringify(body).slice(0, 80));
      assert.equal(r.body.code, 'VALIDATION_ERROR');
    }
  });
});
