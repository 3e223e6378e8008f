// HTTP conventions (contract §3): routing, envelopes, request ids, CORS, headers, limits,
// OpenAPI coverage, and a 500 that reveals nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService } from '../lib/harness.mjs';

test('HTTP core', async (t) => {
  const svc = await startService(t);
  const { token } = await svc.createUser();

  await t.test('GET /health is public and well-formed', async () => {
    const r = await svc.request('GET', '/health');
    assert.equal(r.status, 200);
    assert.equal(r.body.status, 'ok');
    assert.match(r.body.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.match(r.headers.get('content-type'), /application\/json/);
  });

  await t.test('unknown route → 404 NOT_FOUND envelope', async () => {
    for (const path of ['/nope', '/api/nope', '/api/me/unknown/deeper']) {
      const r = await svc.request('GET', path, { token });
      assert.equal(r.status, 404, path);
      assert.deepEqual(r.body, { error: 'Not found', code: 'NOT_FOUND' });
    }
  });

  await t.test('wrong method on a known path → 405 with Allow', async () => {
    const r = await svc.request('PATCH', '/api/api-tokens', { token, body: {} });
    assert.equal(r.status, 405);
    assert.equal(r.body.code, 'METHOD_NOT_ALLOWED');
    assert.equal(r.headers.get('allow'), 'GET, POST, OPTIONS');
    const h = await svc.request('POST', '/health');
    assert.equal(h.status, 405);
  });

  await t.test('X-Request-Id is echoed when well-formed, minted otherwise', async () => {
    const echoed = await svc.request('GET', '/health', { headers: { 'x-request-id': 'abc-123_XYZ=' } });
    assert.equal(echoed.headers.get('x-request-id'), 'abc-123_XYZ=');
    const minted = await svc.request('GET', '/health', { headers: { 'x-request-id': 'bad id!' } });
    assert.match(minted.headers.get('x-request-id'), /^[0-9a-f-]{36}$/);
    const none = await svc.request('GET', '/nope');
    assert.match(none.headers.get('x-request-id'), /^[0-9a-f-]{36}$/);
    assert.notEqual(none.headers.get('x-request-id'), minted.headers.get('x-request-id'));
  });

  await t.test('security headers on every response', async () => {
    for (const r of [await svc.request('GET', '/health'), await svc.request('GET', '/api/me')]) {
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(r.headers.get('x-frame-options'), 'SAMEORIGIN');
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer');
      assert.match(r.headers.get('strict-transport-security'), /max-age=/);
      assert.equal(r.headers.get('cache-control'), 'no-store');
    }
  });

  await t.test('CORS: FRONTEND_URL and its previews only (no local origins next to a production frontend)', async () => {
    const pre = await svc.request('OPTIONS', '/api/me', {
      headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example.com');
    assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
    assert.match(pre.headers.get('access-control-allow-methods'), /PATCH/);
    assert.match(pre.headers.get('access-control-allow-headers'), /Authorization/);
    for (const origin of ['https://pr-7.app.example.com']) {
      const r = await svc.request('GET', '/health', { headers: { origin } });
      assert.equal(r.headers.get('access-control-allow-origin'), origin);
      assert.equal(r.headers.get('access-control-expose-headers'), 'X-Request-Id');
    }
    for (const origin of ['https://evil.example.org', 'https://app.example.com.evil.org', 'http://pr-7.app.example.com', 'http://localhost:5173']) {
      const r = await svc.request('GET', '/health', { headers: { origin } });
      assert.equal(r.headers.get('access-control-allow-origin'), null, origin);
    }
  });

  await t.test('malformed JSON → 400 INVALID_JSON, not 500', async () => {
    const r = await svc.request('POST', '/api/api-tokens', { token, raw: '{"name": ', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, { error: 'Request body is not valid JSON', code: 'INVALID_JSON' });
    const arr = await svc.request('POST', '/api/api-tokens', { token, body: ['x'] });
    assert.equal(arr.status, 400);
    assert.equal(arr.body.code, 'VALIDATION_ERROR');
  });

  await t.test('validation errors share the envelope with field details', async () => {
    const r = await svc.request('POST', '/api/api-tokens', { token, body: { name: '', expiresAt: 'tomorrow' } });
    assert.equal(r.status, 400);
    assert.equal(r.body.code, 'VALIDATION_ERROR');
    assert.deepEqual(r.body.details.map((d) => d.field), ['name', 'expiresAt']);
    for (const d of r.body.details) assert.equal(typeof d.message, 'string');
    const q = await svc.request('GET', '/api/api-tokens?limit=0', { token });
    assert.equal(q.status, 400);
    assert.equal(q.body.details[0].field, 'limit');
  });

  await t.test('bodies over 1 MiB → 413 (declared or streamed)', async () => {
    const big = JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 10) });
    const r = await svc.request('POST', '/api/api-tokens', { token, raw: big, headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 413);
    assert.equal(r.body.code, 'PAYLOAD_TOO_LARGE');
    // Chunked, no Content-Length: the limit is enforced while reading.
    const chunks = [Buffer.from('{"name":"'), Buffer.alloc(1024 * 1024 + 10, 'y'), Buffer.from('"}')];
    const stream = new ReadableStream({ start(c) { for (const ch of chunks) c.enqueue(ch); c.close(); } });
    const res = await fetch(`${svc.url}/api/api-tokens`, {
      method: 'POST', body: stream, duplex: 'half', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    assert.equal(res.status, 413);
    assert.equal((await res.json()).code, 'PAYLOAD_TOO_LARGE');
    // Nothing was created by the refused requests.
    const list = await svc.request('GET', '/api/api-tokens', { token });
    assert.equal(list.body.tokens.length, 1);
    // A chunked body within the limit is read whole (the path without Content-Length).
    const small = new ReadableStream({ start(c) { c.enqueue(Buffer.from('{"name":')); c.enqueue(Buffer.from('"chunked"}')); c.close(); } });
    const ok = await fetch(`${svc.url}/api/api-tokens`, {
      method: 'POST', body: small, duplex: 'half', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    assert.equal(ok.status, 201);
    assert.equal((await ok.json()).name, 'chunked');
  });

  await t.test('/openapi.json is OpenAPI 3.1 and documents every routed path', async () => {
    const r = await svc.request('GET', '/openapi.json');
    assert.equal(r.status, 200);
    assert.match(r.body.openapi, /^3\.1\./);
    const paths = Object.keys(r.body.paths);
    assert.ok(paths.length >= 8);
    // Every documented operation is routed: none answers the router's 404 or 405.
    for (const [path, item] of Object.entries(r.body.paths)) {
      for (const method of Object.keys(item).filter((k) => k !== 'parameters')) {
        const concrete = path.replace(/\{[^}]+\}/g, 'probe');
        const res = await svc.request(method.toUpperCase(), concrete, { token, body: method === 'get' || method === 'delete' ? undefined : {} });
        assert.notEqual(res.status, 405, `${method} ${path}`);
        assert.ok(!(res.status === 404 && res.body?.error === 'Not found'), `${method} ${path} is not routed`);
      }
    }
  });

  await t.test('an unexpected failure is a bare 500 with the request id, nothing else', async () => {
    const db = await svc.db();
    await db.exec('DROP TABLE auth_sessions');
    const r = await svc.request('GET', '/api/me', { token, headers: { 'x-request-id': 'trace-500' } });
    assert.equal(r.status, 500);
    assert.deepEqual(r.body, { error: 'Internal server error', code: 'INTERNAL_ERROR', requestId: 'trace-500' });
    assert.doesNotMatch(r.text, /SELECT|auth_sessions|SQLITE/i);
    // The operator's log line carries the request id and the cause.
    await new Promise((res) => setTimeout(res, 100));
    assert.match(svc.logs.join(''), /request trace-500 failed: 500/);
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
