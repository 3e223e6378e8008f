// MCP for remote clients (contract §14): the official MCP client SDK (v2, @modelcontextprotocol/client)
// drives the OAuth 2.1 flow with its own OAuth support — discovery from the 401's resource
// metadata, dynamic registration, PKCE, the code exchange, refresh — while this test plays the
// browser (sign-in through the GitHub fake, the server-rendered consent form). Then: the
// 2026-07-28 revision (server/discover) and the default mode, mcp:read vs mcp:write, the audit's
// OAuth caller, the user's authorized clients, and every OAuth error of the RFCs at route level
// (refresh reuse revokes the family, single-use codes, audience-bound tokens, error pages that
// never redirect, client ID metadata documents).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { Client, StreamableHTTPClientTransport, UnauthorizedError } from '@modelcontextprotocol/client';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';
import { cookieJar, unescapeHtml } from '../lib/cookie-jar.mjs';

const REDIRECT = 'http://127.0.0.1:7777/callback';
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const unescape = unescapeHtml;

/** An OAuthClientProvider as an MCP client application implements it (tokens kept in memory). */
class Provider {
  constructor(name = 'Test Desk') {
    this.name = name;
  }
  get redirectUrl() { return REDIRECT; }
  get clientMetadata() {
    return { client_name: this.name, redirect_uris: [REDIRECT], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  clientInformation() { return this.info; }
  saveClientInformation(info) { this.info = info; }
  tokens() { return this.saved; }
  saveTokens(tokens) {
    this.saved = tokens;
    knownSecrets.add(tokens.access_token);
    knownSecrets.add(tokens.refresh_token);
  }
  redirectToAuthorization(url) { this.authUrl = url; }
  saveCodeVerifier(v) { this.verifier = v; }
  saveDiscoveryState(state) { this.discovery = state; }
  discoveryState() { return this.discovery; }
  codeVerifier() { return this.verifier; }
}

test('MCP for remote clients: OAuth 2.1, protocol 2026-07-28, tool policy, audit', async (t) => {
  const gh = await startFakeGitHub(t);
  const svc = await startService(t, {
    upstreams: { github: gh.api, githubWeb: gh.web },
    vars: { GITHUB_CLIENT_ID: 'gh-client-id', GITHUB_CLIENT_SECRET: 'gh-client-secret' },
  });
  const ada = await svc.createUser({ email: 'ada@example.com' });
  const api = (method, path, body, token = ada.token) => svc.request(method, path, { token, body });
  // Ada's GitHub account: she signs in with it, and her integration uses it.
  const GH = 'gho_oauth_ada_token_000000000000000000';
  knownSecrets.add(GH);
  gh.addUser(GH, { id: 501, login: 'ada', name: 'Ada', email: null, emails: [{ email: 'ada@example.com', primary: true, verified: true }] });
  gh.addRepo('ada/engine');
  gh.addIssues('ada/engine', 2);
  const created = await api('POST', '/api/integrations', { service: 'github', credentials: { access_token: GH }, config: { syncFrequency: 'manual' } });
  assert.equal(created.status, 201, JSON.stringify(created.body));

  /** A browser: its cookies, and the whole round trip from the authorization URL to the redirect back. */
  const browser = () => {
    const { jar, go } = cookieJar();
    /** Signs in through GitHub when asked; answers the consent page's response. */
    const consentPage = async (authUrl) => {
      let res = await go(authUrl);
      let html = await res.text();
      if (/Sign in to connect/.test(html)) {
        assert.equal(res.status, 200);
        const link = unescape(html.match(/href="(\/auth\/github\?[^"]+)"/)[1]);
        res = await go(svc.url + link);
        assert.equal(res.status, 302);
        const atGitHub = new URL(res.headers.get('location'));
        const code = `gh-signin-${randomBytes(6).toString('hex')}`;
        gh.codes.set(code, { token: GH, challenge: atGitHub.searchParams.get('code_challenge') });
        res = await go(`${svc.url}/auth/github/callback?${new URLSearchParams({ code, state: atGitHub.searchParams.get('state') })}`);
        assert.equal(res.status, 302);
        const back = res.headers.get('location');
        assert.ok(back.startsWith(`${svc.url}/oauth/authorize?`), back);
        assert.ok(jar.has('mcp_signin'), 'signed in for the authorization page');
        res = await go(back);
        html = await res.text();
      }
      return { res, html };
    };
    const fields = (html) => Object.fromEntries([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [m[1], unescape(m[2])]));
    const submit = (form, headers = {}) => go(`${svc.url}/oauth/authorize`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: svc.url, ...headers }, body: new URLSearchParams(form).toString(),
    });
    /** Approves (or denies) what the client asked; answers the redirect back to the client. */
    const authorize = async (authUrl, { decision = 'approve', write = true } = {}) => {
      const { res, html } = await consentPage(authUrl);
      assert.equal(res.status, 200, html);
      assert.match(html, /Allow .* to use your integrations\?/);
      const form = { ...fields(html), decision };
      if (write && /name="write"/.test(html)) form.write = '1';
      const sent = await submit(form);
      assert.equal(sent.status, 302, await sent.text());
      return new URL(sent.headers.get('location'));
    };
    return { go, consentPage, fields, submit, authorize, jar };
  };

  /** The SDK's own OAuth flow: connect → 401 → discovery, registration, authorization URL. */
  const signInWithSdk = async (provider, chrome, opts) => {
    const first = new Client({ name: 'desk', version: '1.0.0' });
    await assert.rejects(first.connect(new StreamableHTTPClientTransport(new URL(`${svc.url}/mcp`), { authProvider: provider })), UnauthorizedError);
    assert.ok(provider.authUrl, 'the SDK built an authorization URL');
    assert.ok(provider.info?.client_id, 'the SDK registered itself');
    const back = await chrome.authorize(provider.authUrl, opts);
    assert.equal(`${back.origin}${back.pathname}`, REDIRECT);
    assert.equal(back.searchParams.get('iss'), svc.url);
    assert.equal(back.searchParams.get('state'), provider.authUrl.searchParams.get('state'));
    const transport = new StreamableHTTPClientTransport(new URL(`${svc.url}/mcp`), { authProvider: provider });
    // The whole callback (code, state, iss): the SDK checks the issuer (RFC 9207).
    await transport.finishAuth(back.searchParams);
    assert.ok(provider.saved?.access_token?.startsWith('mcp_at_'));
    return back;
  };
  const connect = async (options = {}, clientOptions = {}) => {
    const client = new Client({ name: 'desk', version: '1.0.0' }, clientOptions);
    await client.connect(new StreamableHTTPClientTransport(new URL(`${svc.url}/mcp`), options));
    t.after(() => client.close());
    return client;
  };

  const desk = new Provider();
  const chrome = browser();

  await t.test('metadata: RFC 9728 protected resource and RFC 8414 authorization server', async () => {
    for (const path of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']) {
      const r = await svc.request('GET', path);
      assert.equal(r.status, 200);
      assert.deepEqual({ ...r.body, resource_name: undefined }, {
        resource: `${svc.url}/mcp`, authorization_servers: [svc.url], bearer_methods_supported: ['header'], scopes_supported: ['mcp:read', 'mcp:write'], resource_name: undefined,
      });
    }
    const as = (await svc.request('GET', '/.well-known/oauth-authorization-server')).body;
    assert.equal(as.issuer, svc.url);
    assert.equal(as.authorization_endpoint, `${svc.url}/oauth/authorize`);
    assert.equal(as.token_endpoint, `${svc.url}/oauth/token`);
    assert.equal(as.registration_endpoint, `${svc.url}/oauth/register`);
    assert.equal(as.revocation_endpoint, `${svc.url}/oauth/revoke`);
    assert.deepEqual([as.response_types_supported, as.grant_types_supported, as.code_challenge_methods_supported, as.token_endpoint_auth_methods_supported, as.scopes_supported, as.client_id_metadata_document_supported],
      [['code'], ['authorization_code', 'refresh_token'], ['S256'], ['none'], ['mcp:read', 'mcp:write'], true]);
    // Browser-based clients call these cross-origin: any origin, no cookie.
    const preflight = await svc.request('OPTIONS', '/oauth/token', { headers: { origin: 'https://client.example', 'access-control-request-method': 'POST' } });
    assert.equal(preflight.headers.get('access-control-allow-origin'), '*');
    assert.equal((await svc.request('GET', '/.well-known/oauth-authorization-server', { headers: { origin: 'https://client.example' } })).headers.get('access-control-allow-origin'), '*');
    const anon = await svc.request('POST', '/mcp', { body: { jsonrpc: '2.0', id: 1, method: 'tools/list' } });
    assert.equal(anon.status, 401);
    assert.equal(anon.headers.get('www-authenticate'), `Bearer resource_metadata="${svc.url}/.well-known/oauth-protected-resource/mcp"`);
    const bad = await svc.request('POST', '/mcp', { token: 'mcp_at_not-a-token', body: { jsonrpc: '2.0', id: 1, method: 'tools/list' } });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate'), /resource_metadata=".*", error="invalid_token"/);
  });

  await t.test('the SDK signs in: registration, sign-in round trip, consent, PKCE code exchange; tools work with the OAuth token', async () => {
    await signInWithSdk(desk, chrome);
    const client = await connect({ authProvider: desk });
    const names = (await client.listTools()).tools.map((x) => x.name);
    assert.ok(names.includes('github_create_issue') && names.includes('github_get_issue'), names.join());
    const r = await client.callTool({ name: 'github_get_repository', arguments: { repository: 'ada/engine' } });
    assert.equal(r.isError, false, JSON.stringify(r));
    // The audit names the OAuth client as the caller.
    const audit = (await api('GET', '/api/me/audit?limit=5')).body.entries;
    assert.deepEqual([audit[0].caller, audit[0].via, audit[0].action, audit[0].outcome], [{ type: 'oauth_client', id: desk.info.client_id }, 'mcp', 'get_repository', 'ok']);
    // The user sees the client, with its scopes.
    const list = (await api('GET', '/api/me/mcp-clients')).body.clients;
    assert.deepEqual(list.map((c) => [c.clientId, c.clientName, c.scopes]), [[desk.info.client_id, 'Test Desk', ['mcp:read', 'mcp:write']]]);
    assert.ok(list[0].lastUsedAt === null || typeof list[0].lastUsedAt === 'string');
  });

  await t.test('protocol 2026-07-28 through the SDK (auto: server/discover) and the SDK default mode', async () => {
    const modern = await connect({ authProvider: desk }, { versionNegotiation: { mode: 'auto' } });
    assert.equal(modern.getNegotiatedProtocolVersion(), '2026-07-28');
    const tools = (await modern.listTools()).tools;
    const create = tools.find((x) => x.name === 'github_create_issue');
    assert.deepEqual(create.annotations, { title: create.annotations.title, readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true });
    const got = await modern.callTool({ name: 'github_get_issue', arguments: { repository: 'ada/engine', number: 1 } });
    assert.equal(got.isError, false, JSON.stringify(got));
    const pinned = await connect({ requestInit: { headers: { Authorization: `Bearer ${ada.token}` } } }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
    assert.ok((await pinned.listTools()).tools.length > 2);
    const classic = await connect({ requestInit: { headers: { Authorization: `Bearer ${ada.token}` } } });
    assert.equal(classic.getNegotiatedProtocolVersion(), '2025-11-25');
    assert.ok((await classic.listTools()).tools.some((x) => x.name === 'github_get_issue'));
  });

  await t.test('2026-07-28 on the wire: discover, envelope, header agreement, unknown revisions', async () => {
    const meta = (v = '2026-07-28') => ({ 'io.modelcontextprotocol/protocolVersion': v, 'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' }, 'io.modelcontextprotocol/clientCapabilities': {} });
    const send = (body, headers) => svc.request('POST', '/mcp', { token: ada.token, body, headers: { accept: 'application/json, text/event-stream', ...headers } });
    const H = (method, extra = {}) => ({ 'mcp-protocol-version': '2026-07-28', 'mcp-method': method, ...extra });
    const discover = await send({ jsonrpc: '2.0', id: 1, method: 'server/discover', params: { _meta: meta() } }, H('server/discover'));
    assert.equal(discover.status, 200);
    assert.deepEqual(discover.body.result.supportedVersions, ['2026-07-28']);
    assert.equal(discover.body.result.resultType, 'complete');
    assert.equal(discover.body.result._meta['io.modelcontextprotocol/serverInfo'].name, 'integrations-service');
    const code = async (body, headers) => { const r = await send(body, headers); return [r.status, r.body.error?.code]; };
    const list = (m = meta()) => ({ jsonrpc: '2.0', id: 2, method: 'tools/list', params: { _meta: m } });
    assert.deepEqual(await code({ jsonrpc: '2.0', id: 2, method: 'tools/list' }, H('tools/list')), [400, -32602], 'no envelope');
    assert.deepEqual(await code(list(), H('tools/call')), [400, -32020], 'Mcp-Method disagrees');
    assert.deepEqual(await code(list(), { 'mcp-protocol-version': '2026-07-28' }), [400, -32020], 'Mcp-Method missing');
    assert.deepEqual(await code(list(), {}), [400, -32020], 'version header missing');
    assert.deepEqual(await code(list(meta('2025-11-25')), H('tools/list')), [400, -32020], 'header and envelope disagree');
    const future = await send(list(meta('2027-01-01')), H('tools/list', { 'mcp-protocol-version': '2027-01-01' }));
    assert.deepEqual([future.status, future.body.error.code, future.body.error.data.supported], [400, -32022, ['2026-07-28']]);
    const call = { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'github_get_issue', arguments: { repository: 'ada/engine', number: 1 }, _meta: meta() } };
    assert.deepEqual(await code(call, H('tools/call', { 'mcp-name': 'github_create_issue' })), [400, -32020], 'Mcp-Name disagrees');
    assert.deepEqual(await code({ jsonrpc: '2.0', id: 4, method: 'initialize', params: { _meta: meta() } }, H('initialize')), [404, -32601]);
    const notified = await send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { _meta: meta() } }, H('notifications/cancelled'));
    assert.equal(notified.status, 202);
  });

  await t.test('mcp:read: only read-only tools are listed; a write tool answers isError naming mcp:write', async () => {
    const reader = new Provider('Reader');
    const other = browser();
    await signInWithSdk(reader, other, { write: false });
    assert.equal(reader.saved.scope, 'mcp:read');
    const client = await connect({ authProvider: reader });
    const tools = (await client.listTools()).tools;
    assert.ok(tools.length > 0 && tools.every((x) => x.annotations.readOnlyHint), tools.map((x) => x.name).join());
    const r = await client.callTool({ name: 'github_create_issue', arguments: { repository: 'ada/engine', title: 'Nope' } });
    assert.equal(r.isError, true);
    assert.match(r.content[0].text, /needs the mcp:write scope/);
    assert.equal(r.structuredContent.code, 'INSUFFICIENT_SCOPE');
    const audit = (await api('GET', '/api/me/audit?limit=50')).body.entries;
    assert.ok(!audit.some((e) => e.caller.id === reader.info.client_id && e.action === 'create_issue' && e.outcome === 'ok'));
  });

  // Route-level: a registered client and a hand-made PKCE pair.
  const verifier = b64url(randomBytes(32));
  const challenge = b64url(createHash('sha256').update(verifier).digest());
  const reg = await svc.request('POST', '/oauth/register', { body: { client_name: 'Raw', redirect_uris: ['https://raw.example/cb', 'http://127.0.0.1/cb'] } });
  assert.equal(reg.status, 201, JSON.stringify(reg.body));
  const rawId = reg.body.client_id;
  const authUrl = (over = {}) => `${svc.url}/oauth/authorize?${new URLSearchParams({ response_type: 'code', client_id: rawId, redirect_uri: 'https://raw.example/cb', code_challenge: challenge, code_challenge_method: 'S256', state: 'st-1', ...over })}`;
  const tokenCall = (form, headers = {}) => svc.request('POST', '/oauth/token', { raw: new URLSearchParams(form).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } });
  const codeFor = async (over = {}) => {
    const back = await chrome.authorize(authUrl(over));
    assert.equal(back.searchParams.get('state'), over.state ?? 'st-1');
    return back.searchParams.get('code');
  };
  const exchange = (code, over = {}) => tokenCall({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: 'https://raw.example/cb', client_id: rawId, ...over });
  const mcpStatus = async (token) => (await svc.request('POST', '/mcp', { token, body: { jsonrpc: '2.0', id: 1, method: 'tools/list' }, headers: { 'mcp-protocol-version': '2025-06-18' } })).status;

  await t.test('registration errors: RFC 7591 JSON errors', async () => {
    const r = (body, raw) => svc.request('POST', '/oauth/register', raw ? { raw, headers: { 'content-type': 'application/json' } } : { body });
    assert.deepEqual((await r({ redirect_uris: ['http://raw.example/cb'] })).body.error, 'invalid_redirect_uri');
    assert.deepEqual((await r({ redirect_uris: [] })).body.error, 'invalid_redirect_uri');
    assert.deepEqual((await r({ redirect_uris: ['https://a.example/cb'], token_endpoint_auth_method: 'client_secret_basic' })).body.error, 'invalid_client_metadata');
    const notJson = await r(undefined, '{');
    assert.deepEqual([notJson.status, notJson.body.error], [400, 'invalid_client_metadata']);
  });

  await t.test('authorize errors: unknown client and wrong redirect URI are pages; the rest goes back with error, state and iss', async () => {
    const page = async (url) => {
      const res = await chrome.go(url);
      return { status: res.status, location: res.headers.get('location'), html: await res.text(), frame: res.headers.get('x-frame-options'), csp: res.headers.get('content-security-policy') };
    };
    const unknown = await page(authUrl({ client_id: 'mcpc_nobody' }));
    assert.deepEqual([unknown.status, unknown.location], [400, null]);
    assert.match(unknown.html, /Unknown client/);
    const wrong = await page(authUrl({ redirect_uri: 'https://evil.example/cb' }));
    assert.deepEqual([wrong.status, wrong.location], [400, null]);
    assert.match(wrong.html, /not register the redirect URI/);
    const errorOf = async (over) => {
      const p = await page(authUrl(over));
      assert.equal(p.status, 302, p.html);
      const to = new URL(p.location);
      assert.deepEqual([to.origin, to.searchParams.get('state'), to.searchParams.get('iss')], ['https://raw.example', 'st-1', svc.url]);
      return to.searchParams.get('error');
    };
    assert.equal(await errorOf({ code_challenge: '' }), 'invalid_request', 'PKCE is required');
    assert.equal(await errorOf({ code_challenge_method: 'plain' }), 'invalid_request', 'S256 only');
    assert.equal(await errorOf({ scope: 'mcp:admin' }), 'invalid_scope');
    assert.equal(await errorOf({ response_type: 'token' }), 'unsupported_response_type');
    assert.equal(await errorOf({ resource: 'https://elsewhere.example/mcp' }), 'invalid_target');
    // The consent page: never framed, nothing loaded from elsewhere.
    const consent = await page(authUrl({ resource: `${svc.url}/mcp`, scope: 'mcp:read mcp:write' }));
    assert.equal(consent.status, 200);
    assert.equal(consent.frame, 'DENY');
    assert.match(consent.csp, /frame-ancestors 'none'/);
    assert.match(consent.html, /raw\.example/, 'names the redirect host');
    // A loopback redirect URI matches on any port (RFC 8252).
    assert.equal((await page(authUrl({ redirect_uri: 'http://127.0.0.1:40123/cb' }))).status, 200);
  });

  await t.test('the consent form: CSRF, other origins and other browsers refused; deny answers access_denied', async () => {
    const { html } = await chrome.consentPage(authUrl());
    const form = { ...chrome.fields(html), decision: 'approve', write: '1' };
    const noCsrf = await chrome.submit({ ...form, csrf: 'forged' });
    assert.equal(noCsrf.status, 403);
    assert.equal(noCsrf.headers.get('location'), null);
    const widened = await chrome.submit({ ...form, redirect_uri: 'http://127.0.0.1/cb' });
    assert.equal(widened.status, 403, 'the token binds the redirect URI');
    const crossSite = await chrome.submit(form, { origin: 'https://evil.example' });
    assert.equal(crossSite.status, 403);
    const stranger = await fetch(`${svc.url}/oauth/authorize`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(form).toString() });
    assert.equal(stranger.status, 403, 'a browser without the sign-in cookie');
    const denied = await chrome.submit({ ...form, decision: 'deny' });
    const to = new URL(denied.headers.get('location'));
    assert.deepEqual([to.searchParams.get('error'), to.searchParams.get('state'), to.searchParams.get('code')], ['access_denied', 'st-1', null]);
  });

  await t.test('token endpoint: PKCE, single-use codes (reuse revokes), RFC 6749 errors', async () => {
    const code = await codeFor();
    const wrongVerifier = await exchange(code, { code_verifier: b64url(randomBytes(32)) });
    assert.deepEqual([wrongVerifier.status, wrongVerifier.body.error], [400, 'invalid_grant']);
    // The failed attempt used the code up.
    assert.equal((await exchange(code)).body.error, 'invalid_grant');
    const code2 = await codeFor();
    assert.equal((await exchange(code2, { redirect_uri: 'http://127.0.0.1/cb' })).body.error, 'invalid_grant', 'redirect_uri must match');
    const code3 = await codeFor();
    const ok = await exchange(code3);
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    assert.equal(ok.headers.get('cache-control'), 'no-store');
    assert.deepEqual([ok.body.token_type, ok.body.expires_in, ok.body.scope], ['Bearer', 3600, 'mcp:read mcp:write']);
    knownSecrets.add(ok.body.access_token);
    svc.shownOnce(ok.body.access_token);
    assert.equal(await mcpStatus(ok.body.access_token), 200);
    assert.equal((await svc.request('GET', '/api/me', { token: ok.body.access_token })).status, 401, 'accepted by /mcp only');
    const again = await exchange(code3);
    assert.equal(again.body.error, 'invalid_grant');
    assert.equal(await mcpStatus(ok.body.access_token), 401, 'a replayed code revokes what it gave');
    const e = async (form, headers) => { const r = await tokenCall(form, headers); return [r.status, r.body.error]; };
    assert.deepEqual(await e({ grant_type: 'password', client_id: rawId }), [400, 'unsupported_grant_type']);
    assert.deepEqual(await e({ grant_type: 'authorization_code', client_id: rawId }), [400, 'invalid_request']);
    assert.deepEqual(await e({ grant_type: 'authorization_code', code: 'x', code_verifier: verifier, redirect_uri: 'https://raw.example/cb' }), [400, 'invalid_request']);
    assert.deepEqual(await e({ grant_type: 'authorization_code', code: 'x', code_verifier: verifier, redirect_uri: 'https://raw.example/cb', client_id: 'mcpc_nobody' }), [401, 'invalid_client']);
    assert.deepEqual(await e({ grant_type: 'refresh_token', client_id: rawId, refresh_token: 'mcp_rt_nothing' }), [400, 'invalid_grant']);
    const asJson = await svc.request('POST', '/oauth/token', { body: { grant_type: 'authorization_code' } });
    assert.deepEqual([asJson.status, asJson.body.error], [400, 'invalid_request']);
    const other = await svc.request('POST', '/oauth/register', { body: { redirect_uris: ['https://raw.example/cb'] } });
    const stolen = await codeFor();
    assert.equal((await exchange(stolen, { client_id: other.body.client_id })).body.error, 'invalid_grant', 'a code is bound to its client');
  });

  await t.test('refresh tokens rotate; reusing one revokes the whole family; scopes can narrow, not widen', async () => {
    const first = (await exchange(await codeFor())).body;
    const refresh = (token, extra = {}) => tokenCall({ grant_type: 'refresh_token', refresh_token: token, client_id: rawId, ...extra });
    const second = await refresh(first.refresh_token);
    assert.equal(second.status, 200, JSON.stringify(second.body));
    assert.notEqual(second.body.refresh_token, first.refresh_token);
    assert.equal((await refresh(second.body.refresh_token, { scope: 'mcp:read mcp:write mcp:admin' })).body.error, 'invalid_scope');
    const narrowed = await refresh(second.body.refresh_token, { scope: 'mcp:read' });
    assert.deepEqual([narrowed.status, narrowed.body.scope], [200, 'mcp:read']);
    assert.equal(await mcpStatus(narrowed.body.access_token), 200);
    // An attacker replays the first refresh token: everything of this grant stops working.
    const replay = await refresh(first.refresh_token);
    assert.deepEqual([replay.status, replay.body.error], [400, 'invalid_grant']);
    assert.equal((await refresh(narrowed.body.refresh_token)).body.error, 'invalid_grant');
    assert.equal(await mcpStatus(narrowed.body.access_token), 401);
    assert.equal(await mcpStatus(second.body.access_token), 401);
    for (const b of [first, second.body, narrowed.body]) { knownSecrets.add(b.access_token); svc.shownOnce(b.access_token); }
  });

  await t.test('revocation (RFC 7009) and the user\'s authorized clients', async () => {
    const grant = (await exchange(await codeFor())).body;
    const revoke = (token, client_id = rawId) => svc.request('POST', '/oauth/revoke', { raw: new URLSearchParams({ token, client_id }).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    assert.equal((await revoke('mcp_at_unknown')).status, 200, 'unknown tokens too');
    assert.equal((await revoke(grant.access_token, 'mcpc_someone_else')).status, 200);
    assert.equal(await mcpStatus(grant.access_token), 200, 'another client cannot revoke it');
    assert.equal((await revoke(grant.access_token)).status, 200);
    assert.equal(await mcpStatus(grant.access_token), 401);
    // An expired access token: 401 with the challenge that sends the client to refresh.
    const later = (await exchange(await codeFor())).body;
    knownSecrets.add(later.access_token);
    svc.shownOnce(later.access_token);
    assert.equal(await mcpStatus(later.access_token), 200);
    const db = await svc.db();
    await db.prepare("UPDATE mcp_tokens SET expires_at = '2001-01-01T00:00:00.000Z' WHERE kind = 'access' AND client_id = ?1").bind(rawId).run();
    const expired = await svc.request('POST', '/mcp', { token: later.access_token, body: { jsonrpc: '2.0', id: 1, method: 'tools/list' }, headers: { 'mcp-protocol-version': '2025-06-18' } });
    assert.equal(expired.status, 401);
    assert.match(expired.headers.get('www-authenticate'), /^Bearer resource_metadata=".*\/\.well-known\/oauth-protected-resource\/mcp", error="invalid_token"$/);
    const refreshed = await tokenCall({ grant_type: 'refresh_token', refresh_token: grant.refresh_token, client_id: rawId });
    assert.equal(refreshed.status, 200, 'revoking an access token leaves the grant');
    assert.equal((await revoke(refreshed.body.refresh_token)).status, 200);
    assert.equal(await mcpStatus(refreshed.body.access_token), 401, 'a refresh token takes its grant with it');
    // The list, and revoking a client there.
    const before = (await api('GET', '/api/me/mcp-clients')).body.clients.map((c) => c.clientId);
    assert.ok(before.includes(desk.info.client_id));
    const del = await api('DELETE', `/api/me/mcp-clients/${encodeURIComponent(desk.info.client_id)}`);
    assert.equal(del.status, 200);
    assert.equal(await mcpStatus(desk.saved.access_token), 401);
    assert.ok(!(await api('GET', '/api/me/mcp-clients')).body.clients.some((c) => c.clientId === desk.info.client_id));
    assert.equal((await api('DELETE', `/api/me/mcp-clients/${encodeURIComponent(desk.info.client_id)}`)).status, 404);
    const bob = await svc.createUser({ email: 'bob@example.com' });
    assert.deepEqual((await api('GET', '/api/me/mcp-clients', undefined, bob.token)).body.clients, [], 'per user');
    for (const b of [grant, refreshed.body]) { knownSecrets.add(b.access_token); svc.shownOnce(b.access_token); }
  });

  await t.test('client ID metadata documents: fetched, checked, cached; non-https, private, large or slow ones refused', async () => {
    const docs = new Map();
    const host = createServer((req, res) => {
      const d = docs.get(req.url);
      if (!d) { res.writeHead(404); res.end(); return; }
      if (d.redirect) { res.writeHead(302, { location: d.redirect }); res.end(); return; }
      setTimeout(() => { res.writeHead(200, { 'content-type': 'application/json' }); res.end(d.body); }, d.delay ?? 0);
    });
    await new Promise((r) => host.listen(0, '127.0.0.1', r));
    t.after(() => host.close());
    const base = `http://127.0.0.1:${host.address().port}`;
    const doc = (path, body, delay) => { docs.set(path, { body: typeof body === 'string' ? body : JSON.stringify(body), delay }); return `${base}${path}`; };
    const good = doc('/client.json', { client_id: `${base}/client.json`, client_name: 'Metadata Editor', redirect_uris: ['http://127.0.0.1/cb'] });
    const at = (clientId) => `${svc.url}/oauth/authorize?${new URLSearchParams({ response_type: 'code', client_id: clientId, redirect_uri: 'http://127.0.0.1:9999/cb', code_challenge: challenge, code_challenge_method: 'S256', state: 's' })}`;
    const refused = await chrome.go(at(good));
    assert.equal(refused.status, 400, 'http and a loopback host are refused in production');
    assert.match(await refused.text(), /must be https|public host/);
    await svc.reconfigure({ MCP_CLIENT_METADATA_ALLOW_LOOPBACK: 'true' });
    const shown = await chrome.consentPage(at(good));
    assert.equal(shown.res.status, 200, shown.html);
    assert.match(shown.html, /Metadata Editor/);
    docs.delete('/client.json');
    assert.equal((await chrome.consentPage(at(good))).res.status, 200, 'cached for a day');
    const liar = doc('/liar.json', { client_id: `${base}/someone-else.json`, redirect_uris: ['http://127.0.0.1/cb'] });
    assert.match(await (await chrome.go(at(liar))).text(), /names another client_id/);
    docs.set('/moved.json', { redirect: good });
    const moved = await chrome.go(at(`${base}/moved.json`));
    assert.equal(moved.status, 400, 'a redirect is not followed');
    assert.match(await moved.text(), /HTTP 302/);
    const big = doc('/big.json', { client_id: `${base}/big.json`, redirect_uris: ['http://127.0.0.1/cb'], pad: 'x'.repeat(6000) });
    assert.equal((await chrome.go(at(big))).status, 400);
    const slow = doc('/slow.json', { client_id: `${base}/slow.json`, redirect_uris: ['http://127.0.0.1/cb'] }, 6500);
    const started = Date.now();
    assert.equal((await chrome.go(at(slow))).status, 400);
    assert.ok(Date.now() - started < 6400, 'a slow host is not waited for');
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
