// The credential store: user routes (metadata only), the API_KEYS Durable Object protocol
// (store/retrieve/list/rotate/revoke, 404/410, JSON errors), key rotation with lazy
// re-encryption, and refusal without ENCRYPTION_KEY.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService, knownSecrets, TEST_KEY } from '../lib/harness.mjs';

const SECRET = 'sk-live-credential-value-0123456789';
knownSecrets.add(SECRET);

test('credential store', async (t) => {
  const svc = await startService(t);
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const bob = await svc.createUser({ email: 'bob@example.com' });

  await t.test('PUT/GET/DELETE /api/me/credentials: metadata only, per user', async () => {
    const expiresAt = new Date(Date.now() + 3600_000).toISOString();
    const put = await svc.request('PUT', '/api/me/credentials/openai', {
      token: alice.token, body: { credentials: { api_key: SECRET }, scopes: ['chat', 'embeddings'], expiresAt },
    });
    assert.equal(put.status, 200);
    assert.deepEqual(Object.keys(put.body.credential).sort(), ['createdAt', 'expiresAt', 'scopes', 'service']);
    assert.equal(put.body.credential.expiresAt, expiresAt);
    const list = await svc.request('GET', '/api/me/credentials', { token: alice.token });
    assert.deepEqual(list.body.credentials.map((c) => [c.service, c.scopes]), [['openai', ['chat', 'embeddings']]]);
    assert.ok(!list.text.includes(SECRET));
    assert.deepEqual((await svc.request('GET', '/api/me/credentials', { token: bob.token })).body, { credentials: [] });
    assert.equal((await svc.request('DELETE', '/api/me/credentials/openai', { token: bob.token })).status, 404);
    // The value is usable internally, through the DO, by its owner only.
    const keysOfAlice = await svc.apiKeys(alice.userId);
    const got = await keysOfAlice('retrieve', { userId: alice.userId, service: 'openai' });
    assert.equal(got.status, 200);
    assert.deepEqual(got.body.credentials, { api_key: SECRET });
    const keysOfBob = await svc.apiKeys(bob.userId);
    assert.equal((await keysOfBob('retrieve', { userId: bob.userId, service: 'openai' })).status, 404);
  });

  await t.test('input is validated; nothing is stored on failure', async () => {
    const cases = [
      ['/api/me/credentials/Bad%20Name', { credentials: { a: 'b' } }],
      ['/api/me/credentials/ok', {}],
      ['/api/me/credentials/ok', { credentials: {} }],
      ['/api/me/credentials/ok', { credentials: { a: 1 } }],
      ['/api/me/credentials/ok', { credentials: { a: 'b' }, scopes: 'x' }],
      ['/api/me/credentials/ok', { credentials: { a: 'b' }, expiresAt: '2000-01-01T00:00:00Z' }],
    ];
    for (const [path, body] of cases) {
      const r = await svc.request('PUT', path, { token: alice.token, body });
      assert.equal(r.status, 400, `${path} ${JSON.stringify(body)}`);
      assert.equal(r.body.code, 'VALIDATION_ERROR');
    }
    const list = await svc.request('GET', '/api/me/credentials', { token: alice.token });
    assert.deepEqual(list.body.credentials.map((c) => c.service), ['openai']);
  });

  await t.test('DO protocol: store, list, rotate, revoke, JSON errors', async () => {
    const call = await svc.apiKeys(bob.userId);
    const stored = await call('store', { userId: bob.userId, service: 'github', credentials: { access_token: 'gho_1' }, scopes: ['repo'] });
    assert.equal(stored.status, 200);
    assert.equal(stored.body.success, true);
    assert.equal(stored.body.id, 'github');
    const rotated = await call('rotate', { userId: bob.userId, service: 'github', newCredentials: { access_token: 'gho_2' } });
    assert.equal(rotated.status, 200);
    const got = await call('retrieve', { userId: bob.userId, service: 'github' });
    assert.deepEqual([got.body.credentials, got.body.scopes], [{ access_token: 'gho_2' }, ['repo']]);
    const listed = await call('list', { userId: bob.userId });
    assert.deepEqual(listed.body.credentials.map((c) => c.service), ['github']);
    assert.equal((await call('rotate', { userId: bob.userId, service: 'nope', newCredentials: { a: 'b' } })).status, 404);
    assert.deepEqual(await call('revoke', { userId: bob.userId, service: 'github' }), { status: 200, body: { success: true, existed: true } });
    assert.deepEqual(await call('revoke', { userId: bob.userId, service: 'github' }), { status: 200, body: { success: true, existed: false } });
    const missing = await call('retrieve', { userId: bob.userId, service: 'github' });
    assert.deepEqual(missing, { status: 404, body: { error: 'Credentials not found', code: 'NOT_FOUND' } });
    const bad = await call('store', { userId: bob.userId, service: 'x' });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'VALIDATION_ERROR');
    assert.equal((await call('unknown', { userId: bob.userId })).status, 404);
  });

  await t.test('an expired credential answers 410', async () => {
    const call = await svc.apiKeys(alice.userId);
    const soon = new Date(Date.now() + 400).toISOString();
    assert.equal((await call('store', { userId: alice.userId, service: 'shortlived', credentials: { k: 'v' }, expiresAt: soon })).status, 200);
    assert.equal((await call('retrieve', { userId: alice.userId, service: 'shortlived' })).status, 200);
    await new Promise((r) => setTimeout(r, 500));
    const r = await call('retrieve', { userId: alice.userId, service: 'shortlived' });
    assert.deepEqual(r, { status: 410, body: { error: 'Credentials expired', code: 'CREDENTIALS_EXPIRED' } });
    // Still listed (so the user sees it needs renewing) and deletable.
    const list = await svc.request('GET', '/api/me/credentials', { token: alice.token });
    assert.ok(list.body.credentials.some((c) => c.service === 'shortlived'));
    assert.equal((await svc.request('DELETE', '/api/me/credentials/shortlived', { token: alice.token })).status, 200);
  });

  await t.test('key rotation: old values open with ENCRYPTION_KEY_PREVIOUS and are re-sealed', async () => {
    const NEW_KEY = '0f9e8d7c6b5a49382716f5e4d3c2b1a00f9e8d7c6b5a49382716f5e4d3c2b1a0'; // 64 hex characters
    await svc.reconfigure({ ENCRYPTION_KEY: NEW_KEY, ENCRYPTION_KEY_PREVIOUS: TEST_KEY });
    let call = await svc.apiKeys(alice.userId);
    const r = await call('retrieve', { userId: alice.userId, service: 'openai' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.credentials, { api_key: SECRET });
    // The read re-sealed it under the new key: the previous key is no longer needed.
    await svc.reconfigure({ ENCRYPTION_KEY: NEW_KEY, ENCRYPTION_KEY_PREVIOUS: undefined });
    call = await svc.apiKeys(alice.userId);
    assert.equal((await call('retrieve', { userId: alice.userId, service: 'openai' })).status, 200);
    // A wrong key cannot open it, and says so without leaking anything.
    await svc.reconfigure({ ENCRYPTION_KEY: 'Xq7Lm2Vn9Bc4Zt1Rw8Ks5Hd3Jf6Gp0Ye2Ui7Oa4Pl9M' }); // strong, unrelated
    call = await svc.apiKeys(alice.userId);
    const wrong = await call('retrieve', { userId: alice.userId, service: 'openai' });
    assert.equal(wrong.status, 500);
    assert.equal(wrong.body.code, 'UNDECRYPTABLE');
    await svc.reconfigure({ ENCRYPTION_KEY: NEW_KEY });
  });

  await t.test('without ENCRYPTION_KEY the store refuses with 503', async () => {
    await svc.reconfigure({ ENCRYPTION_KEY: undefined });
    const r = await svc.request('PUT', '/api/me/credentials/x1', { token: alice.token, body: { credentials: { a: 'b' } } });
    assert.equal(r.status, 503);
    assert.equal(r.body.code, 'ENCRYPTION_NOT_CONFIGURED');
    // Routes that need no key still work.
    assert.equal((await svc.request('GET', '/api/me', { token: alice.token })).status, 200);
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
