// The SessionAgent queue with real timing: followup order, steer, collect with the binding's
// debounce, attachments, claim/complete, clear/stop, notifications, and 50 concurrent prompts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService } from '../lib/harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const png = (bytes) => Buffer.alloc(bytes, 7).toString('base64');

test('session queue', async (t) => {
  const svc = await startService(t);
  const alice = await svc.createUser({ email: 'alice@example.com', name: 'Alice' });
  const newSession = async () => (await svc.request('POST', '/api/sessions', { token: alice.token, body: { workspace: 'q' } })).body.session;
  const send = (body) => svc.request('POST', '/api/prompt', { token: alice.token, body });
  const queue = async (id) => (await svc.request('GET', `/api/sessions/${id}/queue`, { token: alice.token })).body.prompts;
  const messages = async (id) => (await svc.request('GET', `/api/sessions/${id}/messages`, { token: alice.token })).body.messages;
  const claim = (id) => svc.request('POST', `/api/sessions/${id}/queue/claim`, { token: alice.token });
  const complete = (id, pid, body = {}) => svc.request('POST', `/api/sessions/${id}/queue/${pid}/complete`, { token: alice.token, body });

  await t.test('followup keeps order; claim and complete drive the queue', async () => {
    const s = await newSession();
    for (const content of ['one', 'two', 'three']) {
      const r = await send({ content, channelType: 'web', channelId: s.id });
      assert.equal(r.status, 200);
      assert.equal(r.body.routed, true);
      assert.equal(r.body.sessionId, s.id);
      assert.equal(r.body.queueMode, 'followup');
      assert.equal(r.body.status, 'queued');
    }
    assert.deepEqual((await queue(s.id)).map((p) => [p.content, p.status]), [['one', 'queued'], ['two', 'queued'], ['three', 'queued']]);
    const c1 = await claim(s.id);
    assert.equal(c1.status, 200);
    assert.equal(c1.body.prompt.content, 'one');
    assert.equal(c1.body.prompt.status, 'processing');
    assert.equal(c1.body.prompt.authorId, alice.userId);
    const busy = await claim(s.id);
    assert.equal(busy.status, 409);
    assert.equal(busy.body.code, 'PROMPT_IN_PROGRESS');
    assert.equal(busy.body.details.promptId, c1.body.prompt.id);
    assert.equal((await complete(s.id, c1.body.prompt.id, { result: 'done one' })).status, 200);
    assert.equal((await complete(s.id, c1.body.prompt.id, { result: 'again' })).body.code, 'PROMPT_ALREADY_COMPLETED');
    const c2 = await claim(s.id);
    assert.equal(c2.body.prompt.content, 'two');
    assert.deepEqual((await queue(s.id)).map((p) => [p.content, p.status]),
      [['two', 'processing'], ['three', 'queued'], ['one', 'completed']]);
    const msgs = await messages(s.id);
    assert.deepEqual(msgs.map((m) => [m.role, m.content]), [['user', 'one'], ['user', 'two'], ['user', 'three'], ['assistant', 'done one']]);
    assert.equal(msgs[0].authorName, 'Alice');
    assert.equal(msgs[0].authorEmail, 'alice@example.com');
    assert.equal(msgs[0].channelType, 'web');
    assert.equal((await complete(s.id, 'no-such-prompt')).status, 404);
  });

  await t.test('steer aborts the prompt in progress, drops only that channel\'s queued prompts, runs first', async () => {
    const s = await newSession();
    const tg = await svc.request('POST', '/api/channels/bindings', { token: alice.token, body: { sessionId: s.id, channelType: 'telegram', channelId: '555' } });
    assert.equal(tg.status, 201);
    await send({ content: 'web-1', channelType: 'web', channelId: s.id });
    await send({ content: 'tg-1', channelType: 'telegram', channelId: '555' });
    await send({ content: 'web-2', channelType: 'web', channelId: s.id });
    await send({ content: 'tg-2', channelType: 'telegram', channelId: '555' });
    const running = await claim(s.id);
    assert.equal(running.body.prompt.content, 'web-1');
    const steer = await send({ content: 'tg-steer', channelType: 'telegram', channelId: '555', queueMode: 'steer' });
    assert.equal(steer.body.queueMode, 'steer');
    const q = await queue(s.id);
    const status = Object.fromEntries(q.map((p) => [p.content, p.status]));
    assert.deepEqual(status, { 'web-1': 'aborted', 'tg-1': 'aborted', 'tg-2': 'aborted', 'web-2': 'queued', 'tg-steer': 'queued' });
    assert.deepEqual(q.filter((p) => p.status === 'queued').map((p) => p.content), ['tg-steer', 'web-2']);
    const aborted = await complete(s.id, running.body.prompt.id, { result: 'late' });
    assert.equal(aborted.status, 409);
    assert.equal(aborted.body.code, 'PROMPT_ABORTED');
    assert.equal((await claim(s.id)).body.prompt.content, 'tg-steer');
    // Every message is still stored.
    assert.equal((await messages(s.id)).length, 5);
    const events = (await svc.request('GET', `/api/sessions/${s.id}/events`, { token: alice.token })).body.events;
    assert.ok(events.some((e) => e.type === 'prompt.steer' && e.data.aborted === 3));
  });

  await t.test('collect merges messages sent within the binding\'s debounce into one prompt', async () => {
    const s = await newSession();
    const b = await svc.request('POST', '/api/channels/bindings', {
      token: alice.token, body: { sessionId: s.id, channelType: 'api', channelId: 'collector', queueMode: 'collect', collectDebounceMs: 600 },
    });
    assert.equal(b.status, 201);
    for (const content of ['part a', 'part b', 'part c']) {
      const r = await send({ content, channelType: 'api', channelId: 'collector' });
      assert.equal(r.body.queueMode, 'collect');
      assert.equal(r.body.status, 'buffered');
      assert.equal(r.body.promptId, null);
      await sleep(150);
    }
    // Each message is stored at once; nothing is queued until the debounce passes.
    assert.equal((await messages(s.id)).length, 3);
    assert.deepEqual(await queue(s.id), []);
    await sleep(900);
    const q = await queue(s.id);
    assert.equal(q.length, 1);
    assert.equal(q[0].content, 'part a\n\n---\n\npart b\n\n---\n\npart c');
    assert.equal(q[0].queueMode, 'collect');
    assert.equal(q[0].channelId, 'collector');
    // A later message starts a new buffer.
    await send({ content: 'part d', channelType: 'api', channelId: 'collector' });
    await sleep(900);
    assert.deepEqual((await queue(s.id)).map((p) => p.content), [q[0].content, 'part d']);
  });

  await t.test('attachments: both shapes arrive; beyond the caps is a clear 400 that stores nothing', async () => {
    const s = await newSession();
    const r = await send({
      content: 'look', channelType: 'web', channelId: s.id,
      attachments: [
        { type: 'file', name: 'shot.png', data: png(3000), mimeType: 'image/png' },
        { type: 'file', mime: 'audio/ogg', url: `data:audio/ogg;base64,${png(10)}`, filename: 'v.ogg' },
      ],
    });
    assert.equal(r.status, 200);
    const msg = (await messages(s.id))[0];
    assert.deepEqual(msg.attachments, [{ mime: 'image/png', filename: 'shot.png', size: 3000 }, { mime: 'audio/ogg', filename: 'v.ogg', size: 10 }]);
    const c = await claim(s.id);
    assert.equal(c.body.prompt.attachments.length, 2);
    assert.equal(c.body.prompt.attachments[0].url, `data:image/png;base64,${png(3000)}`);
    // A 3 MB image survives the 2 MB row limit of DO storage (stored in chunks).
    const big = png(3 * 1024 * 1024);
    const rb = await send({ content: '', channelType: 'web', channelId: s.id, attachments: [{ type: 'file', name: 'big.png', data: big, mimeType: 'image/png' }] });
    assert.equal(rb.status, 200);
    await complete(s.id, c.body.prompt.id);
    const cb = await claim(s.id);
    assert.equal(cb.body.prompt.attachments[0].url.length, `data:image/png;base64,${big}`.length);
    assert.ok(cb.body.prompt.attachments[0].url.endsWith(big.slice(-100)));

    const before = (await messages(s.id)).length;
    const tooMany = Array.from({ length: 9 }, () => ({ type: 'file', name: 'x.png', data: png(4), mimeType: 'image/png' }));
    const bad = [
      [{ type: 'file', name: 'x.txt', data: png(4), mimeType: 'text/plain' }],
      [{ type: 'file', name: 'x.png', data: '***', mimeType: 'image/png' }],
      tooMany,
      [{ type: 'file', name: 'huge.png', data: png(9_000_001), mimeType: 'image/png' }],
    ];
    for (const attachments of bad) {
      const res = await send({ content: 'x', channelType: 'web', channelId: s.id, attachments });
      assert.equal(res.status, 400);
      assert.equal(res.body.code, 'VALIDATION_ERROR');
      assert.match(res.body.details[0].field, /^attachments/);
    }
    assert.equal((await messages(s.id)).length, before);
    const empty = await send({ content: '   ', channelType: 'web', channelId: s.id });
    assert.equal(empty.status, 400);
  });

  await t.test('clear aborts the queue; stop also interrupts the prompt in progress', async () => {
    const s = await newSession();
    for (const content of ['a', 'b', 'c']) await send({ content, channelType: 'web', channelId: s.id });
    await claim(s.id);
    const cleared = await svc.request('POST', `/api/sessions/${s.id}/queue/clear`, { token: alice.token });
    assert.deepEqual(cleared.body, { success: true, cleared: 2, interrupted: 0 });
    assert.deepEqual((await queue(s.id)).map((p) => p.status), ['processing', 'aborted', 'aborted']);
    const stopped = await svc.request('POST', `/api/sessions/${s.id}/stop`, { token: alice.token });
    assert.deepEqual(stopped.body, { success: true, cleared: 0, interrupted: 1 });
    assert.equal((await claim(s.id)).status, 204);
    // The session still takes new work.
    await send({ content: 'after', channelType: 'web', channelId: s.id });
    assert.equal((await claim(s.id)).body.prompt.content, 'after');
  });

  await t.test('50 concurrent prompts are each stored exactly once, in a consistent queue', async () => {
    const s = await newSession();
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => send({ content: `p${i}`, channelType: 'web', channelId: s.id })));
    assert.ok(results.every((r) => r.status === 200 && r.body.routed));
    const ids = results.map((r) => r.body.promptId);
    assert.equal(new Set(ids).size, 50);
    const q = await queue(s.id);
    assert.equal(q.length, 50);
    assert.deepEqual(new Set(q.map((p) => p.content)), new Set(Array.from({ length: 50 }, (_, i) => `p${i}`)));
    assert.equal((await messages(s.id)).length, 50);
    // Claiming drains them one at a time, in queue order, each once.
    const order = [];
    for (let i = 0; i < 50; i++) {
      const c = await claim(s.id);
      order.push(c.body.prompt.id);
      await complete(s.id, c.body.prompt.id);
    }
    assert.deepEqual(order, q.map((p) => p.id));
    assert.equal((await claim(s.id)).status, 204);
  });

  await t.test('git-state notifications are kept in the event log', async () => {
    const s = await newSession();
    const ns = await svc.mf.getDurableObjectNamespace('SESSIONS');
    const stub = ns.get(ns.idFromName(s.id));
    const r = await stub.fetch('https://do.internal/webhook-update', { method: 'POST', body: JSON.stringify({ type: 'pr', prState: 'merged', commitCount: 3 }) });
    assert.deepEqual(await r.json(), { ok: true });
    const events = (await svc.request('GET', `/api/sessions/${s.id}/events`, { token: alice.token })).body.events;
    assert.deepEqual(events.map((e) => [e.type, e.data]), [['git-state', { prState: 'merged', commitCount: 3 }]]);
    const bad = await stub.fetch('https://do.internal/webhook-update', { method: 'POST', body: '{oops' });
    assert.equal(bad.status, 400);
  });

  await t.test('logs are paged: limit and an opaque cursor, oldest first', async () => {
    const s = await newSession();
    for (let i = 0; i < 7; i++) await send({ content: `m${i}`, channelType: 'web', channelId: s.id });
    const get = (what, q) => svc.request('GET', `/api/sessions/${s.id}/${what}?${q}`, { token: alice.token });
    const seen = [];
    let cursor = '';
    for (let i = 0; i < 10; i++) {
      const r = await get('messages', `limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(r.status, 200);
      seen.push(...r.body.messages.map((m) => m.content));
      if (!r.body.hasMore) break;
      cursor = r.body.cursor;
    }
    assert.deepEqual(seen, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    const q = await get('queue', 'limit=5');
    assert.deepEqual([q.body.prompts.length, q.body.hasMore], [5, true]);
    const rest = await get('queue', `limit=5&cursor=${q.body.cursor}`);
    assert.deepEqual([rest.body.prompts.length, rest.body.hasMore], [2, false]);
    for (const bad of ['limit=0', 'limit=101', 'cursor=%2E%2E%2Fstop', 'cursor=bm90LWEtbnVtYmVy']) {
      assert.equal((await get('events', bad)).status, 400, bad);
    }
  });

  await t.test('a claimed prompt whose runner died returns to the queue after its lease; heartbeats keep it', async () => {
    await svc.reconfigure({ SESSION_CLAIM_LEASE_SECONDS: '2' });
    const s = await newSession();
    await send({ content: 'long job', channelType: 'web', channelId: s.id });
    const c = await claim(s.id);
    assert.equal(c.status, 200);
    const id = c.body.prompt.id;
    assert.ok(Date.parse(c.body.prompt.leaseUntil) > Date.now());
    // Renewed while the runner lives.
    await sleep(1200);
    const hb = await svc.request('POST', `/api/sessions/${s.id}/queue/${id}/heartbeat`, { token: alice.token });
    assert.equal(hb.status, 200);
    await sleep(1200);
    assert.equal((await claim(s.id)).status, 409, 'still leased: PROMPT_IN_PROGRESS');
    // The runner dies: no more heartbeats.
    await sleep(2200);
    const again = await claim(s.id);
    assert.equal(again.status, 200, 'claimable again');
    assert.equal(again.body.prompt.id, id);
    const events = (await svc.request('GET', `/api/sessions/${s.id}/events`, { token: alice.token })).body.events;
    assert.ok(events.some((e) => e.type === 'prompt.lease_expired' && e.data.promptId === id));
    assert.equal((await complete(s.id, id, { result: 'done' })).status, 200);
    const late = await svc.request('POST', `/api/sessions/${s.id}/queue/${id}/heartbeat`, { token: alice.token });
    assert.deepEqual([late.status, late.body.code], [409, 'PROMPT_NOT_PROCESSING']);
    for (const bad of ['..%2Fstop', 'not-a-uuid']) {
      assert.equal((await svc.request('POST', `/api/sessions/${s.id}/queue/${bad}/complete`, { token: alice.token, body: {} })).status, 404, bad);
    }
    await svc.reconfigure({ SESSION_CLAIM_LEASE_SECONDS: undefined });
  });

  await t.test('retention on the alarm: old events, finished prompts and attachment bytes go; live work stays', async () => {
    await svc.reconfigure({ SESSION_RETENTION_INTERVAL_SECONDS: '1', SESSION_EVENT_RETENTION_SECONDS: '2', SESSION_ATTACHMENT_RETENTION_SECONDS: '2' });
    const s = await newSession();
    await send({ content: 'with a picture', channelType: 'web', channelId: s.id, attachments: [{ type: 'file', name: 'a.png', mimeType: 'image/png', data: png(1000) }] });
    const c = await claim(s.id);
    assert.equal(c.body.prompt.attachments.length, 1);
    await complete(s.id, c.body.prompt.id, { result: 'seen' });
    await send({ content: 'still queued', channelType: 'web', channelId: s.id });
    // The alarm runs every second; after the 2-second retention the finished prompt goes.
    let q = await queue(s.id);
    for (let i = 0; i < 40 && q.length > 1; i++) {
      await sleep(250);
      q = await queue(s.id);
    }
    assert.deepEqual(q.map((p) => [p.content, p.status]), [['still queued', 'queued']]);
    const m = await messages(s.id);
    assert.deepEqual(m.map((x) => x.content), ['with a picture', 'seen', 'still queued'], 'messages are the conversation: kept');
    assert.equal(m[0].attachments[0].size > 0, true, 'metadata stays');
    await svc.reconfigure({ SESSION_RETENTION_INTERVAL_SECONDS: undefined, SESSION_EVENT_RETENTION_SECONDS: undefined, SESSION_ATTACHMENT_RETENTION_SECONDS: undefined });
  });
});
