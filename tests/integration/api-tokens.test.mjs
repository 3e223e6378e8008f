// API token management: create (shown once), list (paginated, no secrets), revoke; tokens made
// with a sign-in session capped at 90 days, and no token outliving the token that made it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { startService } from '../lib/harness.mjs';

test('API tokens', async (t) => {
  const svc = await startService(t);
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  const db = await svc.db();
  let created;

  await t.test('POST /api/api-tokens → 201 with the token shown once', async () => {
    const expiresAt = new Date(Date.now() + 86400_000).toISOString();
    const r = await svc.request('POST', '/api/api-tokens', { token: alice.token, body: { name: '  CI deploy  ', expiresAt } });
    assert.equal(r.status, 201);
    created = r.body;
    assert.deepEqual(Object.keys(created).sort(), ['createdAt', 'expiresAt', 'id', 'name', 'prefix', 'token']);
    assert.equal(created.name, 'CI deploy');
    assert.match(created.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.match(created.token, /^itk_[A-Za-z0-9_-]{43}$/);
    assert.equal(created.prefix, created.token.slice(0, 12));
    assert.equal(created.expiresAt, expiresAt);
    // Only the hash is stored.
    const row = await db.prepare('SELECT token_hash, prefix FROM api_tokens WHERE id = ?').bind(created.id).first();
    assert.equal(row.token_hash, createHash('sha256').update(created.token).digest('hex'));
    const dump = JSON.stringify(await db.prepare('SELECT * FROM api_tokens').all());
    assert.ok(!dump.includes(created.token));
    // And it works.
    const me = await svc.request('GET', '/api/me', { token: created.token });
    assert.equal(me.body.user.id, alice.userId);
  });

  await t.test('creation validates its input and writes nothing on failure', async () => {
    const count = async () => (await db.prepare('SELECT COUNT(*) AS n FROM api_tokens').first()).n;
    const before = await count();
    for (const body of [{}, { name: '' }, { name: 'x'.repeat(101) }, { name: 5 }, { name: 'a', expiresAt: '2001-01-01T00:00:00Z' }, { name: 'a', expiresAt: 'soon' }]) {
      const r = await svc.request('POST', '/api/api-tokens', { token: alice.token, body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.code, 'VALIDATION_ERROR');
      assert.ok(r.body.details.length >= 1);
    }
    assert.equal(await count(), before);
  });

  await t.test('GET /api/api-tokens lists the caller\'s tokens without secrets, paginated', async () => {
    for (let i = 0; i < 4; i++) {
      assert.equal((await svc.request('POST', '/api/api-tokens', { token: alice.token, body: { name: `t${i}` } })).status, 201);
    }
    const first = await svc.request('GET', '/api/api-tokens?limit=2', { token: alice.token });
    assert.equal(first.status, 200);
    assert.equal(first.body.tokens.length, 2);
    assert.equal(first.body.hasMore, true);
    assert.equal(typeof first.body.cursor, 'string');
    const seen = [...first.body.tokens];
    let cursor = first.body.cursor;
    while (cursor) {
      const page = await svc.request('GET', `/api/api-tokens?limit=2&cursor=${encodeURIComponent(cursor)}`, { token: alice.token });
      seen.push(...page.body.tokens);
      cursor = page.body.hasMore ? page.body.cursor : undefined;
    }
    assert.equal(seen.length, 6); // the harness token, CI deploy, t0..t3
    assert.equal(new Set(seen.map((x) => x.id)).size, 6);
    for (const tok of seen) {
      assert.equal(tok.token, undefined);
      assert.ok(!JSON.stringify(tok).includes('hash'));
      assert.match(tok.prefix, /^itk_/);
    }
    const times = seen.map((x) => x.createdAt);
    assert.deepEqual(times, [...times].sort().reverse(), 'newest first');
    const bad = await svc.request('GET', '/api/api-tokens?cursor=%%%', { token: alice.token });
    assert.equal(bad.status, 400);
    // Bob sees only his own.
    const b = await svc.request('GET', '/api/api-tokens', { token: bob.token });
    assert.equal(b.body.tokens.length, 1);
  });

  await t.test('DELETE /api/api-tokens/:id revokes immediately; others\' tokens are 404', async () => {
    const asBob = await svc.request('DELETE', `/api/api-tokens/${created.id}`, { token: bob.token });
    assert.equal(asBob.status, 404);
    assert.equal(asBob.body.code, 'NOT_FOUND');
    assert.equal((await svc.request('GET', '/api/me', { token: created.token })).status, 200);
    // `/api/integrations` authenticates and lists in one D1 batch: the same answer to revocation.
    assert.deepEqual((await svc.request('GET', '/api/integrations', { token: created.token })).body, { integrations: [] });
    const r = await svc.request('DELETE', `/api/api-tokens/${created.id}`, { token: alice.token });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { success: true });
    assert.equal((await svc.request('GET', '/api/me', { token: created.token })).status, 401);
    const listed = await svc.request('GET', '/api/integrations', { token: created.token });
    assert.deepEqual([listed.status, listed.body.code, listed.body.integrations], [401, 'UNAUTHORIZED', undefined]);
    assert.equal((await svc.request('DELETE', `/api/api-tokens/${created.id}`, { token: alice.token })).status, 404);
    const list = await svc.request('GET', '/api/api-tokens', { token: alice.token });
    assert.ok(!list.body.tokens.some((x) => x.id === created.id));
    assert.equal((await svc.request('DELETE', '/api/api-tokens/no-such-id', { token: alice.token })).status, 404);
  });

  await t.test('a token can revoke itself', async () => {
    const own = await svc.request('POST', '/api/api-tokens', { token: bob.token, body: { name: 'self' } });
    const r = await svc.request('DELETE', `/api/api-tokens/${own.body.id}`, { token: own.body.token });
    assert.equal(r.status, 200);
    assert.equal((await svc.request('GET', '/api/me', { token: own.body.token })).status, 401);
  });

  await t.test('tokens made with a sign-in session expire within 90 days, and no token outlives the token that made it', async () => {
    const days = (iso) => (Date.parse(iso) - Date.now()) / 86_400_000;
    const inDays = (n) => new Date(Date.now() + n * 86_400_000).toISOString();
    // A sign-in session as /auth/exchange makes one (its token is kept as a SHA-256 hash).
    const signIn = async (user) => {
      const text = randomBytes(32).toString('base64url');
      await db.prepare('INSERT INTO auth_sessions (id, user_id, token_hash, provider, expires_at) VALUES (?, ?, ?, ?, ?)')
        .bind(randomUUID(), user.userId, createHash('sha256').update(text).digest('hex'), 'github', inDays(30)).run();
      return text;
    };
    const make = (token, extra = {}) => svc.request('POST', '/api/api-tokens', { token, body: { name: 'capped', ...extra } });
    const refusedOn = (r) => [r.status, r.body.code, r.body.details?.[0]?.field];
    const carol = await svc.createUser({ email: 'carol@example.com' });
    const session = await signIn(carol);
    for (const expiresAt of ['9999-12-31T00:00:00Z', inDays(91)]) {
      assert.deepEqual(refusedOn(await make(session, { expiresAt })), [400, 'VALIDATION_ERROR', 'expiresAt'], expiresAt);
    }
    const within = await make(session, { expiresAt: inDays(89) });
    assert.equal(within.status, 201);
    const parent = await make(session);
    assert.equal(parent.status, 201);
    assert.ok(Math.abs(days(parent.body.expiresAt) - 90) < 0.01, parent.body.expiresAt);
    // A token made by that token inherits its end (no expiresAt), and cannot ask for a later one or none.
    const child = await make(parent.body.token);
    assert.deepEqual([child.status, child.body.expiresAt], [201, parent.body.expiresAt]);
    for (const expiresAt of ['9999-12-31T00:00:00Z', inDays(90.5), null]) {
      assert.deepEqual(refusedOn(await make(parent.body.token, { expiresAt })), [400, 'VALIDATION_ERROR', 'expiresAt'], String(expiresAt));
    }
    assert.equal((await make(child.body.token)).body.expiresAt, parent.body.expiresAt, 'and down the line');
    const sooner = await make(child.body.token, { expiresAt: inDays(1) });
    assert.ok(Math.abs(days(sooner.body.expiresAt) - 1) < 0.01);
    // Admins keep their exception: a sign-in session may make a non-expiring token when asked for
    // explicitly (expiresAt: null); a far date is refused as anyone's is.
    const root = await svc.createUser({ email: 'root@example.com', admin: true });
    const adminSession = await signIn(root);
    assert.deepEqual(refusedOn(await make(adminSession, { expiresAt: '9999-12-31T00:00:00Z' })), [400, 'VALIDATION_ERROR', 'expiresAt']);
    const forever = await make(adminSession, { expiresAt: null });
    assert.deepEqual([forever.status, forever.body.expiresAt], [201, undefined]);
    // A token without an expiry (as `npm run user:create` makes) is not capped.
    const far = await make(carol.token, { expiresAt: '9999-12-31T00:00:00Z' });
    assert.deepEqual([far.status, far.body.expiresAt], [201, '9999-12-31T00:00:00.000Z']);
    assert.deepEqual([(await make(carol.token)).body.expiresAt], [undefined]);
  });
});
