// Custom LLM providers (admin): the original's validation messages and reserved ids, URL and
// model checks, the key sealed and kept across updates that do not resend it (bug 43), removed
// by null or "", never shown; the test action against a local /models endpoint and its timeout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFake } from '../lib/fake-upstream.mjs';

test('custom LLM providers', async (t) => {
  const llm = await startFake(t, 'llm');
  const KEY = 'sk-custom-provider-secret-0123456789';
  knownSecrets.add(KEY);
  llm.on('GET', '/v1/models', (req) => (req.headers.authorization === `Bearer ${KEY}`
    ? { json: { object: 'list', data: [{ id: 'llama-3-70b', object: 'model' }, { id: 'mixtral', object: 'model' }] } }
    : { status: 401, json: { error: { message: 'Incorrect API key provided' } } }));
  const svc = await startService(t);
  const admin = await svc.createUser({ email: 'admin@example.com', admin: true });
  const member = await svc.createUser({ email: 'member@example.com' });
  const api = (method, path, body, user = admin) => svc.request(method, path, { token: user.token, body });
  const valid = { displayName: 'My LLM', baseUrl: `${llm.url}/v1`, models: [{ id: 'llama-3-70b', name: 'Llama 3', contextWindow: 8192, maxOutputTokens: 2048 }] };

  await t.test('validation: the original\'s messages, reserved ids, URLs, models', async () => {
    const cases = [
      ['Bad_Id', valid, 'Provider ID must be 1-50 characters, lowercase alphanumeric with hyphens'],
      ['a'.repeat(51), valid, 'Provider ID must be 1-50 characters, lowercase alphanumeric with hyphens'],
      ['openai', valid, 'Provider ID "openai" is reserved for a built-in provider'],
      ['anthropic', valid, 'Provider ID "anthropic" is reserved for a built-in provider'],
      ['mine', { ...valid, displayName: '  ' }, 'Display name is required'],
      ['mine', { ...valid, baseUrl: undefined }, 'Base URL is required'],
      ['mine', { ...valid, baseUrl: 'llm.example.com/v1' }, 'Base URL must be an absolute http(s) URL'],
      ['mine', { ...valid, baseUrl: 'ftp://llm.example.com' }, 'Base URL must be an absolute http(s) URL'],
      ['mine', { ...valid, models: [] }, 'At least one model is required'],
      ['mine', { ...valid, models: [{ name: 'x' }] }, 'Each model must have an id'],
      ['mine', { ...valid, models: [{ id: 'a' }, { id: 'a' }] }, 'Model ids must be unique ("a" is repeated)'],
      ['mine', { ...valid, models: [{ id: 'a', contextWindow: -1 }] }, 'contextWindow must be a positive integer'],
      ['mine', { ...valid, models: [{ id: 'a', maxOutputTokens: 'lots' }] }, 'maxOutputTokens must be a positive integer'],
    ];
    for (const [id, body, message] of cases) {
      const r = await api('PUT', `/api/admin/custom-providers/${encodeURIComponent(id)}`, body);
      assert.equal(r.status, 400, `${id} ${JSON.stringify(body)}`);
      assert.deepEqual([r.body.code, r.body.error], ['VALIDATION_ERROR', message]);
    }
    const bad = await svc.request('PUT', '/api/admin/custom-providers/mine', { token: admin.token, raw: '{nope', headers: { 'content-type': 'application/json' } });
    assert.equal(bad.body.code, 'INVALID_JSON');
    assert.equal((await api('PUT', '/api/admin/custom-providers/mine', valid, member)).status, 403);
    assert.deepEqual((await api('GET', '/api/admin/custom-providers')).body, { providers: [] }, 'nothing stored by failures');
  });

  await t.test('the key is sealed, kept when not resent, removed by null or "", never shown', async () => {
    const created = await api('PUT', '/api/admin/custom-providers/my-llm', { ...valid, apiKey: KEY });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const p = created.body.provider;
    assert.deepEqual([p.providerId, p.displayName, p.baseUrl, p.hasKey, p.setBy], ['my-llm', 'My LLM', `${llm.url}/v1`, true, admin.userId]);
    assert.deepEqual(p.models, valid.models);
    assert.ok(!created.text.includes(KEY));
    const db = await svc.db();
    const stored = await db.prepare("SELECT encrypted_key FROM custom_providers WHERE provider_id = 'my-llm'").first();
    assert.match(stored.encrypted_key, /^enc:v1:/);
    assert.ok(!stored.encrypted_key.includes(KEY));
    // An update without apiKey keeps it (the original erased it).
    const renamed = await api('PUT', '/api/admin/custom-providers/my-llm', { ...valid, displayName: 'Renamed' });
    assert.deepEqual([renamed.body.provider.displayName, renamed.body.provider.hasKey, renamed.body.provider.id], ['Renamed', true, p.id]);
    assert.deepEqual((await api('POST', '/api/admin/custom-providers/my-llm/test')).body, { ok: true, status: 200, models: ['llama-3-70b', 'mixtral'] });
    const list = await api('GET', '/api/admin/custom-providers');
    assert.deepEqual(list.body.providers.map((x) => [x.providerId, x.hasKey]), [['my-llm', true]]);
    assert.ok(!list.text.includes(KEY));
    for (const apiKey of [null, '']) {
      await api('PUT', '/api/admin/custom-providers/my-llm', { ...valid, apiKey: KEY });
      const removed = await api('PUT', '/api/admin/custom-providers/my-llm', { ...valid, apiKey });
      assert.equal(removed.body.provider.hasKey, false);
    }
    // Without a key the endpoint refuses: reported, not an error of ours.
    assert.deepEqual((await api('POST', '/api/admin/custom-providers/my-llm/test')).body, { ok: false, status: 401, models: [] });
  });

  await t.test('test: unreachable and slow endpoints; unknown and deleted providers', async () => {
    await api('PUT', '/api/admin/custom-providers/gone', { ...valid, baseUrl: 'http://127.0.0.1:9/v1' });
    const unreachable = await api('POST', '/api/admin/custom-providers/gone/test');
    assert.deepEqual([unreachable.status, unreachable.body.code], [502, 'UPSTREAM_ERROR']);
    await api('PUT', '/api/admin/custom-providers/my-llm', { ...valid, apiKey: KEY });
    llm.fault('/v1/models', { delayMs: 6500, status: 200, json: { data: [] } });
    const t0 = Date.now();
    const slow = await api('POST', '/api/admin/custom-providers/my-llm/test');
    assert.deepEqual([slow.status, slow.body.code], [502, 'UPSTREAM_ERROR']);
    assert.ok(Date.now() - t0 < 6400, 'bounded by the timeout');
    assert.equal((await api('POST', '/api/admin/custom-providers/nobody/test')).status, 404);
    assert.deepEqual((await api('DELETE', '/api/admin/custom-providers/gone')).body, { ok: true });
    assert.equal((await api('DELETE', '/api/admin/custom-providers/gone')).status, 404);
    assert.equal((await api('DELETE', '/api/admin/custom-providers/my-llm', undefined, member)).status, 403);
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
