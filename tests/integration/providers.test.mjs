// Custom LLM providers (admin): the original's validation messages and reserved ids, URL and
// model checks, the key sealed and kept across updates that do not resend it (bug 43), removed
// by null or "", never shown, dropped when the base URL moves to another origin; loopback and
// private hosts refused unless ALLOW_PRIVATE_PROVIDER_URLS; the test action against a local
// /models endpoint and its timeout.
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
  // The fake provider listens on 127.0.0.1: allowed here as in local development.
  const svc = await startService(t, { vars: { ALLOW_PRIVATE_PROVIDER_URLS: 'true' } });
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

  await t.test('a base URL moved to another origin drops the stored key unless apiKey comes with it', async () => {
    // Another local server: another origin (its port). An admin who points the provider there
    // without the key must not receive the key another admin stored for the original host.
    const evil = await startFake(t, 'evil');
    const seen = [];
    evil.on('GET', '/v1/models', (req) => { seen.push(req.headers.authorization ?? null); return { json: { data: [] } }; });
    await api('PUT', '/api/admin/custom-providers/moving', { ...valid, apiKey: KEY });
    const samePlace = await api('PUT', '/api/admin/custom-providers/moving', { ...valid, baseUrl: `${llm.url}/v2/` });
    assert.deepEqual([samePlace.body.provider.baseUrl, samePlace.body.provider.hasKey], [`${llm.url}/v2`, true], 'same origin, another path: kept');
    const moved = await api('PUT', '/api/admin/custom-providers/moving', { ...valid, baseUrl: `${evil.url}/v1` });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    assert.equal(moved.body.provider.hasKey, false);
    assert.deepEqual((await api('POST', '/api/admin/custom-providers/moving/test')).body, { ok: true, status: 200, models: [] });
    assert.deepEqual(seen, [null], 'the new host got no key');
    // Scheme and host are part of the origin too (localhost is 127.0.0.1's other name).
    await api('PUT', '/api/admin/custom-providers/moving', { ...valid, apiKey: KEY });
    const host = await api('PUT', '/api/admin/custom-providers/moving', { ...valid, baseUrl: valid.baseUrl.replace('127.0.0.1', 'localhost') });
    assert.equal(host.body.provider.hasKey, false);
    // With apiKey in the same request the new origin gets the key it was given.
    const NEW_KEY = 'sk-for-the-new-host-0123456789';
    knownSecrets.add(NEW_KEY);
    const both = await api('PUT', '/api/admin/custom-providers/moving', { ...valid, baseUrl: `${evil.url}/v1`, apiKey: NEW_KEY });
    assert.equal(both.body.provider.hasKey, true);
    await api('POST', '/api/admin/custom-providers/moving/test');
    assert.deepEqual(seen, [null, `Bearer ${NEW_KEY}`]);
    // A redirect is reported, not followed: the key would travel to a host nobody checked.
    llm.on('GET', '/v3/models', () => ({ status: 302, headers: { location: `${evil.url}/v1/models` } }));
    await api('PUT', '/api/admin/custom-providers/moving', { ...valid, baseUrl: `${llm.url}/v3`, apiKey: KEY });
    assert.deepEqual((await api('POST', '/api/admin/custom-providers/moving/test')).body, { ok: false, status: 302, models: [] });
    assert.deepEqual(seen, [null, `Bearer ${NEW_KEY}`], 'the redirect target saw nothing');
    assert.deepEqual((await api('DELETE', '/api/admin/custom-providers/moving')).body, { ok: true });
  });

  await t.test('without ALLOW_PRIVATE_PROVIDER_URLS, loopback, private, link-local and unique-local hosts are refused', async () => {
    await svc.reconfigure({ ALLOW_PRIVATE_PROVIDER_URLS: undefined });
    const refused = [
      valid.baseUrl, 'http://127.1.2.3/v1', 'http://localhost:11434/v1', 'http://LOCALHOST./v1', 'http://ollama.localhost/v1',
      'http://10.0.0.5/v1', 'http://172.16.0.1', 'http://172.31.255.255', 'http://192.168.1.10/v1', 'http://169.254.169.254/latest',
      'http://[::1]:8080', 'http://[fd12:3456::1]/v1', 'http://[fc00::1]', 'http://[fe80::1]/v1', 'http://[::ffff:127.0.0.1]/v1',
      'http://0.0.0.0:8080', 'http://2130706433/v1', 'http://0x7f.0.0.1/',
    ];
    for (const baseUrl of refused) {
      const r = await api('PUT', '/api/admin/custom-providers/private', { ...valid, baseUrl });
      assert.deepEqual([r.status, r.body.code, r.body.details?.[0]?.field], [400, 'VALIDATION_ERROR', 'baseUrl'], baseUrl);
    }
    // Public hosts, neighbours of the private ranges included, are fine.
    for (const baseUrl of ['https://llm.example.com/v1', 'http://172.32.0.1', 'http://11.0.0.1', 'http://192.169.0.1', 'http://[2001:db8::1]/v1', 'https://localhost.example.com']) {
      const r = await api('PUT', '/api/admin/custom-providers/public', { ...valid, baseUrl });
      assert.equal(r.status, 200, `${baseUrl}: ${JSON.stringify(r.body)}`);
    }
    // A provider stored while private hosts were allowed is not called (its key stays home).
    const before = llm.requests.length;
    const stored = await api('POST', '/api/admin/custom-providers/my-llm/test');
    assert.deepEqual([stored.status, stored.body.code, stored.body.details?.[0]?.field], [400, 'VALIDATION_ERROR', 'baseUrl']);
    assert.equal(llm.requests.length, before);
    await svc.reconfigure({ ALLOW_PRIVATE_PROVIDER_URLS: 'true' });
    assert.equal((await api('POST', '/api/admin/custom-providers/my-llm/test')).status, 200);
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
