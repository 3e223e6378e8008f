// The MCP server at POST /mcp (contract §11), driven by the official MCP TypeScript SDK client
// (Client + StreamableHTTPClientTransport, bearer token in requestInit.headers): initialize and
// version negotiation, the tool list of a user with GitHub, Gmail and Calendar integrations
// (paged), read and write actions against the fakes, invalid arguments (-32602), action
// failures as isError results, other users' integrations, org scope, 401 and the Origin guard,
// and the transport's details (GET 405, notifications 202, batches, the protocol version header).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError, ErrorCode } from '@modelcontextprotocol/sdk/types.js';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';
import { startFakeGoogle } from '../lib/fake-google.mjs';
import { addGmail, rawMessage } from '../lib/fake-gmail.mjs';
import { addFakeCalendar } from '../lib/fake-calendar.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ME = 'alice.mcp@gmail.test';
const PUBLIC_URL = 'https://integrations.example.com';

test('MCP server over Streamable HTTP', async (t) => {
  const gh = await startFakeGitHub(t);
  const g = await startFakeGoogle(t);
  const mail = addGmail(g);
  const cal = addFakeCalendar(g);
  for (const m of [g.accessTokens, g.refreshTokens]) {
    const set = m.set.bind(m);
    m.set = (k, v) => { knownSecrets.add(k); return set(k, v); };
  }
  // Ten tools a page, so listing takes several pages.
  const svc = await startService(t, {
    upstreams: { github: gh.api, githubWeb: gh.web },
    vars: { ...g.vars(), MCP_TOOLS_PAGE_SIZE: '10', PUBLIC_URL, SYNC_REQUEST_BUDGET: '1000' },
  });
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  const admin = await svc.createUser({ email: 'root@example.com', admin: true });
  const TOKENS = { alice: 'gho_mcp_alice_token_0000000000000000', bob: 'gho_mcp_bob_token_000000000000000000', admin: 'gho_mcp_admin_token_0000000000000000' };
  Object.entries(TOKENS).forEach(([login, tok], i) => {
    knownSecrets.add(tok);
    gh.addUser(tok, { id: 100 + i, login });
  });
  gh.addRepo('alice/app');
  gh.addIssues('alice/app', 2);
  await mail.addMessage(ME, { raw: rawMessage({ from: 'Grace Hopper <grace@example.com>', to: ME, subject: 'Compiler notes', text: 'The nanosecond wire is on my desk.' }) });
  cal.addAccount(ME);
  const api = (method, path, body, user = alice) => svc.request(method, path, { token: user.token, body });
  const connect = async (user, body) => {
    const r = await api('POST', '/api/integrations', { config: { syncFrequency: 'manual' }, ...body }, user);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.integration;
  };
  const grant = () => { const c = g.grant(ME); return { ...c, expires_at: Number(c.expires_at) * 1000 }; };
  const github = await connect(alice, { service: 'github', credentials: { access_token: TOKENS.alice } });
  const gmail = await connect(alice, { service: 'gmail', credentials: grant() });
  const calendar = await connect(alice, { service: 'google_calendar', credentials: grant() });
  const bobGithub = await connect(bob, { service: 'github', credentials: { access_token: TOKENS.bob } });

  /** An SDK client connected with `token` (closed when the test ends). */
  const mcp = async (token, headers = {}) => {
    const client = new Client({ name: 'mcp-test', version: '1.0.0' });
    const transport = new StreamableHTTPClientTransport(new URL(`${svc.url}/mcp`), {
      requestInit: { headers: { ...(token ? { Authorization: `Bearer ${token}` } : {}), ...headers } },
    });
    await client.connect(transport);
    t.after(() => client.close());
    return { client, transport };
  };
  /** Every tool, following nextCursor; also answers the number of pages. */
  const listAll = async (client) => {
    const tools = [];
    let cursor;
    let pages = 0;
    do {
      const r = await client.listTools(cursor ? { cursor } : {});
      tools.push(...r.tools);
      cursor = r.nextCursor;
      pages++;
    } while (cursor);
    return { tools, pages };
  };
  const rejects = async (promise, code) => {
    try {
      await promise;
    } catch (e) {
      assert.ok(e instanceof McpError, String(e));
      assert.equal(e.code, code, e.message);
      return e;
    }
    assert.fail('expected a JSON-RPC error');
  };
  /** A raw POST to /mcp. */
  const post = (body, { token = alice.token, headers = {} } = {}) => svc.request('POST', '/mcp', {
    token, raw: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
  });
  const structured = (r) => {
    assert.equal(r.content[0].type, 'text');
    return r.structuredContent;
  };

  const { client, transport } = await mcp(alice.token);

  await t.test('initialize: the version negotiated, the tools capability, no session', async () => {
    assert.equal(client.getServerVersion().name, 'integrations-service');
    assert.ok(client.getServerCapabilities().tools, 'tools capability');
    assert.equal(client.getServerCapabilities().resources, undefined);
    // This SDK (v1) asks for its newest revision, 2025-11-25, which the server speaks.
    assert.equal(transport.protocolVersion, '2025-11-25');
    assert.equal(transport.sessionId, undefined, 'stateless: no Mcp-Session-Id');
    assert.match(client.getInstructions(), /stateless/);
    assert.deepEqual(await client.ping(), {});
    for (const [asked, answered] of [['2025-03-26', '2025-03-26'], ['2025-06-18', '2025-06-18'], ['2025-11-25', '2025-11-25'], ['2031-01-01', '2025-11-25']]) {
      const r = await post({ jsonrpc: '2.0', id: 'init', method: 'initialize', params: { protocolVersion: asked, capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /^application\/json/);
      assert.equal(r.headers.get('mcp-session-id'), null);
      assert.deepEqual([r.body.id, r.body.result.protocolVersion], ['init', answered]);
    }
  });

  await t.test('tools/list: every action of the caller\'s active integrations, paged, with schema and description', async () => {
    const first = await client.listTools();
    assert.equal(first.tools.length, 10);
    assert.ok(first.nextCursor, 'a next page');
    const { tools, pages } = await listAll(client);
    assert.equal(pages, 4);
    const names = tools.map((x) => x.name);
    const expected = ['integrations_list', 'entities_search'];
    for (const integ of [github, gmail, calendar]) {
      const actions = (await api('GET', `/api/integrations/${integ.id}/actions`)).body.actions;
      for (const a of actions) {
        expected.push(`${integ.service}_${a.name}`);
        const tool = tools.find((x) => x.name === `${integ.service}_${a.name}`);
        assert.ok(tool, `${integ.service}_${a.name}`);
        assert.deepEqual(tool.inputSchema, a.params);
        assert.equal(tool.description, a.description);
        assert.equal(tool._meta.integrationId, integ.id);
      }
    }
    assert.deepEqual(names, expected);
    assert.equal(new Set(names).size, names.length);
    assert.equal(names.length, 2 + 5 + 22 + 10);
    assert.equal(tools.find((x) => x.name === 'github_create_issue').annotations.readOnlyHint, false);
    assert.equal(tools.find((x) => x.name === 'gmail_search_messages').annotations.readOnlyHint, true);
    for (const tool of tools) {
      const an = tool.annotations;
      assert.deepEqual(Object.keys(an).sort(), ['destructiveHint', 'idempotentHint', 'openWorldHint', 'readOnlyHint', 'title'], tool.name);
      if (an.readOnlyHint) assert.deepEqual([an.destructiveHint, an.idempotentHint], [false, true], tool.name);
    }
    const hints = (name) => { const an = tools.find((x) => x.name === name).annotations; return [an.readOnlyHint, an.destructiveHint, an.idempotentHint, an.openWorldHint]; };
    assert.deepEqual(hints('gmail_delete_draft'), [false, true, true, true]);
    assert.deepEqual(hints('gmail_send_email'), [false, false, false, true]);
    assert.deepEqual(hints('google_calendar_update_event'), [false, true, true, true]);
    assert.deepEqual(hints('entities_search'), [true, false, true, false]);
    assert.deepEqual(tools.find((x) => x.name === 'entities_search').inputSchema.required, ['q']);
    const bad = await post({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { cursor: 'nope' } });
    assert.deepEqual([bad.status, bad.body.error.code], [200, ErrorCode.InvalidParams]);
  });

  await t.test('a read action and write actions run against the fakes', async () => {
    const before = gh.fake.requests.length;
    const read = await client.callTool({ name: 'github_get_issue', arguments: { repository: 'alice/app', number: 2 } });
    assert.equal(read.isError, false);
    assert.deepEqual([structured(read).id, structured(read).title], ['alice/app#2', 'Issue 2']);
    assert.deepEqual(JSON.parse(read.content[0].text), read.structuredContent);
    assert.ok(gh.fake.requests.slice(before).some((q) => q.method === 'GET' && q.path === '/api/repos/alice/app/issues/2'));

    const created = await client.callTool({ name: 'github_create_issue', arguments: { repository: 'alice/app', title: 'Filed by an agent', body: 'Opened over MCP', labels: ['bug'] } });
    assert.equal(created.isError, false, JSON.stringify(created));
    assert.deepEqual(Object.keys(created.structuredContent).sort(), ['number', 'state', 'title', 'url']);
    const sent = gh.fake.requests.filter((q) => q.method === 'POST' && q.path === '/api/repos/alice/app/issues').at(-1);
    assert.deepEqual([sent.json.title, sent.json.body, sent.json.labels], ['Filed by an agent', 'Opened over MCP', ['bug']]);
    const stored = await api('GET', `/api/integrations/${github.id}/entities/issues?limit=100`);
    assert.ok(stored.body.entities.some((e) => e.id === `alice/app#${created.structuredContent.number}`), 'stored as the actions route stores it');

    const mailSent = await client.callTool({ name: 'gmail_send_email', arguments: { to: 'friend@example.com', subject: 'Sent by an agent', body: 'Hello over MCP' } });
    assert.equal(mailSent.isError, false, JSON.stringify(mailSent));
    assert.ok(mailSent.structuredContent.id);
    const raw = mail.sent.at(-1).raw;
    assert.match(raw, /^Subject: Sent by an agent\r?$/m);
    assert.match(raw, /^To: friend@example\.com\r?$/m);

    const cals = await client.callTool({ name: 'google_calendar_list_calendars', arguments: {} });
    assert.equal(cals.isError, false, JSON.stringify(cals));
    assert.ok(cals.structuredContent.calendars.some((c) => c.id === ME));
  });

  await t.test('arguments against the schema and unknown tools are -32602; nothing reaches a provider', async () => {
    const before = gh.fake.requests.length;
    const e = await rejects(client.callTool({ name: 'github_create_issue', arguments: { repository: 42, title: '', color: 'red' } }), ErrorCode.InvalidParams);
    assert.deepEqual(e.data.details.map((d) => d.field).sort(), ['color', 'repository', 'title']);
    assert.match(e.message, /Invalid arguments for tool github_create_issue/);
    await rejects(client.callTool({ name: 'github_get_issue', arguments: { repository: 'alice/app' } }), ErrorCode.InvalidParams);
    const unknown = await rejects(client.callTool({ name: 'github_delete_everything', arguments: {} }), ErrorCode.InvalidParams);
    assert.match(unknown.message, /Unknown tool: github_delete_everything/);
    const raw = await post({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'github_get_issue', arguments: ['alice/app', 1] } });
    assert.deepEqual([raw.status, raw.body.id, raw.body.error.code], [200, 9, ErrorCode.InvalidParams]);
    assert.equal(gh.fake.requests.length, before);
  });

  await t.test('action failures are tool results with isError and the error\'s message', async () => {
    const missing = await client.callTool({ name: 'github_get_issue', arguments: { repository: 'alice/app', number: 999 } });
    assert.equal(missing.isError, true);
    assert.equal(missing.content[0].text, 'Not found on GitHub');
    assert.equal(missing.structuredContent.code, 'NOT_FOUND');

    gh.fake.fault(/\/issues\/1$/, { status: 503, json: { message: 'unavailable' } });
    const down = await client.callTool({ name: 'github_get_issue', arguments: { repository: 'alice/app', number: 1 } });
    assert.deepEqual([down.isError, down.structuredContent.code, down.structuredContent.details.status], [true, 'UPSTREAM_ERROR', 503]);
    assert.match(down.content[0].text, /unavailable/);

    gh.fake.fault(/\/issues\/1$/, { status: 429, headers: { 'retry-after': '9' }, json: { message: 'slow down' } });
    const limited = await client.callTool({ name: 'github_get_issue', arguments: { repository: 'alice/app', number: 1 } });
    assert.deepEqual([limited.isError, limited.structuredContent.code, limited.structuredContent.details.retryAfter], [true, 'RATE_LIMITED', 9]);

    // Schema-valid arguments the service refuses (an invalid recurrence line) are invalid input data: a result too.
    const badRule = await client.callTool({ name: 'google_calendar_create_event', arguments: { summary: 'Standup', start: '2026-03-02T09:00:00Z', recurrence: ['RRULE:FREQ=SOMETIMES'] } });
    assert.deepEqual([badRule.isError, badRule.structuredContent.code, badRule.structuredContent.details[0].field], [true, 'VALIDATION_ERROR', 'recurrence.0']);

    // Refused credentials: the integration goes to error; its tools leave the list, but a
    // client that still calls one is told why.
    gh.fake.fault(/\/issues\/1$/, { status: 401, json: { message: 'Bad credentials' } });
    const refused = await client.callTool({ name: 'github_get_issue', arguments: { repository: 'alice/app', number: 1 } });
    assert.deepEqual([refused.isError, refused.structuredContent.code], [true, 'RECONNECT_REQUIRED']);
    assert.match(refused.content[0].text, /reconnect/);
    assert.equal((await api('GET', `/api/integrations/${github.id}`)).body.integration.status, 'error');
    const { tools } = await listAll(client);
    assert.ok(!tools.some((x) => x.name.startsWith('github_')), 'no tools of an integration in error');
    const again = await client.callTool({ name: 'github_get_repository', arguments: { repository: 'alice/app' } });
    assert.deepEqual([again.isError, again.structuredContent.code], [true, 'RECONNECT_REQUIRED']);
    assert.equal((await api('PATCH', `/api/integrations/${github.id}`, { status: 'active' })).body.integration.status, 'active');
    assert.ok((await listAll(client)).tools.some((x) => x.name === 'github_get_repository'));
  });

  await t.test('integrations_list and entities_search', async () => {
    const list = await client.callTool({ name: 'integrations_list', arguments: {} });
    assert.equal(list.isError, false);
    const integrations = list.structuredContent.integrations;
    assert.deepEqual(integrations.map((i) => i.id), [github.id, gmail.id, calendar.id]);
    assert.ok(integrations[0].tools.includes('github_create_issue'));
    assert.equal(integrations[1].tools.length, 22);
    assert.ok(integrations.every((i) => i.owned === true && i.status === 'active'));

    const r = await api('POST', `/api/integrations/${gmail.id}/sync`, { fullSync: true });
    assert.equal(r.status, 202);
    for (let i = 0; i < 400; i++) {
      const s = await api('GET', `/api/integrations/${gmail.id}/sync/${r.body.syncId}`);
      if (s.body.status === 'completed') break;
      assert.notEqual(s.body.status, 'failed', JSON.stringify(s.body));
      await sleep(50);
    }
    // The issue created over MCP was stored by the action; the mail came from the sync.
    const found = await client.callTool({ name: 'entities_search', arguments: { q: 'agent' } });
    assert.equal(found.isError, false, JSON.stringify(found));
    const hits = found.structuredContent.results;
    assert.ok(hits.some((h) => h.integrationId === github.id && h.type === 'issues' && h.title === 'Filed by an agent'), JSON.stringify(hits));
    const wire = await client.callTool({ name: 'entities_search', arguments: { q: 'nanosecond', integrationId: gmail.id, type: 'messages' } });
    assert.deepEqual(wire.structuredContent.results.map((h) => [h.title, h.integrationId]), [['Compiler notes', gmail.id]]);
    assert.match(wire.structuredContent.results[0].snippet, /\*\*nanosecond\*\*/);
    assert.equal(wire.structuredContent.hasMore, false);
    const nothing = await client.callTool({ name: 'entities_search', arguments: { q: '!!!' } });
    assert.deepEqual([nothing.isError, nothing.structuredContent.code], [true, 'VALIDATION_ERROR']);
    const wrongType = await client.callTool({ name: 'entities_search', arguments: { q: 'x', integrationId: gmail.id, type: 'events' } });
    assert.deepEqual([wrongType.isError, wrongType.structuredContent.code], [true, 'VALIDATION_ERROR']);
  });

  await t.test('another user sees none of these tools; org scope adds read-only tools with a short id', async () => {
    const { client: bobs } = await mcp(bob.token);
    const { tools } = await listAll(bobs);
    assert.deepEqual(tools.map((x) => x.name).filter((n) => !n.startsWith('github_')), ['integrations_list', 'entities_search']);
    assert.equal(tools.filter((x) => x.name.startsWith('github_')).length, 5);
    assert.ok(tools.filter((x) => x._meta).every((x) => x._meta.integrationId === bobGithub.id));
    assert.ok(!JSON.stringify(tools).includes(github.id));
    await rejects(bobs.callTool({ name: 'gmail_send_email', arguments: { to: 'x@example.com', subject: 's' } }), ErrorCode.InvalidParams);
    const theirs = await bobs.callTool({ name: 'integrations_list', arguments: {} });
    assert.deepEqual(theirs.structuredContent.integrations.map((i) => i.id), [bobGithub.id]);
    const peek = await bobs.callTool({ name: 'entities_search', arguments: { q: 'agent', integrationId: github.id } });
    assert.deepEqual([peek.isError, peek.structuredContent.code], [true, 'NOT_FOUND']);
    const all = await bobs.callTool({ name: 'entities_search', arguments: { q: 'agent' } });
    assert.deepEqual(all.structuredContent.results, [], 'Alice\'s data is not Bob\'s to search');
    const before = mail.sent.length;
    await rejects(bobs.callTool({ name: `gmail_send_email_${gmail.id.replaceAll('-', '').slice(0, 8)}`, arguments: { to: 'x@example.com', subject: 's' } }), ErrorCode.InvalidParams);
    assert.equal(mail.sent.length, before);

    // The admin shares a GitHub integration with the organisation.
    const shared = await connect(admin, { service: 'github', credentials: { access_token: TOKENS.admin } });
    assert.equal((await api('PATCH', `/api/integrations/${shared.id}`, { scope: 'org' }, admin)).status, 200);
    const names = (await listAll(client)).tools.map((x) => x.name);
    const short = (id) => id.replaceAll('-', '').slice(0, 8);
    const [mine, org] = [short(github.id), short(shared.id)];
    assert.notEqual(mine, org);
    assert.ok(names.includes(`github_create_issue_${mine}`) && names.includes(`github_get_issue_${mine}`));
    assert.ok(names.includes(`github_get_issue_${org}`));
    assert.ok(!names.includes(`github_create_issue_${org}`), 'no writes through someone else\'s integration');
    assert.ok(!names.includes('github_get_issue'), 'two GitHub integrations: both carry their id');
    assert.ok(names.includes('gmail_send_email'), 'one Gmail: plain names');
    const viaOrg = await client.callTool({ name: `github_get_issue_${org}`, arguments: { repository: 'alice/app', number: 1 } });
    assert.equal(viaOrg.isError, false, JSON.stringify(viaOrg));
    assert.equal(gh.fake.requests.at(-1).headers.authorization, `Bearer ${TOKENS.admin}`, 'through the shared integration\'s credentials');
    await rejects(client.callTool({ name: `github_create_issue_${org}`, arguments: { repository: 'alice/app', title: 'x' } }), ErrorCode.InvalidParams);
    assert.equal((await api('PATCH', `/api/integrations/${shared.id}`, { scope: 'user' }, admin)).status, 200);
    assert.ok((await listAll(client)).tools.some((x) => x.name === 'github_get_issue'), 'back to plain names');
  });

  await t.test('401 without a valid token (WWW-Authenticate: Bearer with the resource metadata); an untrusted Origin is refused', async () => {
    const metadata = `resource_metadata="${PUBLIC_URL}/.well-known/oauth-protected-resource/mcp"`;
    for (const [token, challenge] of [[null, `Bearer ${metadata}`], ['itk_not_a_real_token_000000000000000000', `Bearer ${metadata}, error="invalid_token"`]]) {
      const r = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { token });
      assert.deepEqual([r.status, r.body.code], [401, 'UNAUTHORIZED']);
      assert.equal(r.headers.get('www-authenticate'), challenge);
    }
    await assert.rejects(mcp(undefined), (e) => e.code === 401 && /UNAUTHORIZED/.test(e.message), 'the SDK client is refused');
    const evil = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { headers: { origin: 'https://evil.example' } });
    assert.deepEqual([evil.status, evil.body.code], [403, 'ORIGIN_NOT_ALLOWED']);
    const rebound = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { headers: { origin: svc.url } });
    assert.equal(rebound.status, 403, 'the request\'s own host is what DNS rebinding forges');
    await assert.rejects(mcp(alice.token, { Origin: 'http://attacker.example:8787' }), (e) => e.code === 403 && /ORIGIN_NOT_ALLOWED/.test(e.message));
    for (const origin of ['https://app.example.com', PUBLIC_URL]) {
      const r = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { headers: { origin } });
      assert.deepEqual([r.status, r.body.result], [200, {}], origin);
      assert.equal(r.headers.get('access-control-allow-origin'), origin === PUBLIC_URL ? null : origin);
    }
  });

  await t.test('transport: GET 405, notifications 202, batches, the protocol version header, JSON-RPC errors', async () => {
    for (const method of ['GET', 'DELETE']) {
      const r = await svc.request(method, '/mcp', { token: alice.token, headers: { accept: 'text/event-stream' } });
      assert.equal(r.status, 405);
      assert.match(r.headers.get('allow'), /POST/);
    }
    const note = await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
    assert.deepEqual([note.status, note.text], [202, '']);
    const response = await post({ jsonrpc: '2.0', id: 5, result: {} });
    assert.equal(response.status, 202);
    const parse = await post('{"jsonrpc": "2.0", "id": 1, "method": ');
    assert.deepEqual([parse.status, parse.body.id, parse.body.error.code], [400, null, ErrorCode.ParseError]);
    const notRpc = await post({ hello: 'world' });
    assert.deepEqual([notRpc.status, notRpc.body.error.code], [400, ErrorCode.InvalidRequest]);
    const unknown = await post({ jsonrpc: '2.0', id: 'u', method: 'resources/list' });
    assert.deepEqual([unknown.status, unknown.body.id, unknown.body.error.code], [200, 'u', ErrorCode.MethodNotFound]);
    const batch = [{ jsonrpc: '2.0', id: 1, method: 'ping' }, { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'integrations_list' } }];
    for (const headers of [{}, { 'mcp-protocol-version': '2025-06-18' }]) {
      const refused = await post(batch, { headers });
      assert.deepEqual([refused.status, refused.body.error.code], [400, ErrorCode.InvalidRequest]);
    }
    const old = await post(batch, { headers: { 'mcp-protocol-version': '2025-03-26' } });
    assert.equal(old.status, 200);
    assert.deepEqual(old.body.map((x) => x.id), [1, 2]);
    assert.equal(old.body[1].result.structuredContent.integrations.length, 3);
    const version = await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { headers: { 'mcp-protocol-version': '1999-01-01' } });
    assert.deepEqual([version.status, version.body.error.code], [400, ErrorCode.InvalidRequest]);
    for (const v of ['2025-06-18', '2025-03-26']) {
      assert.equal((await post({ jsonrpc: '2.0', id: 1, method: 'ping' }, { headers: { 'mcp-protocol-version': v } })).status, 200);
    }
    const big = await post({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(1024 * 1024) } });
    assert.deepEqual([big.status, big.body.code], [413, 'PAYLOAD_TOO_LARGE']);
  });

  await t.test('audit trail: every action run, REST and MCP, without argument values', async () => {
    // One REST run beside the MCP runs above.
    const rest = await api('POST', `/api/integrations/${github.id}/actions/get_issue`, { repository: 'alice/app', number: 1 });
    assert.equal(rest.status, 200, JSON.stringify(rest.body));
    const entries = [];
    let cursor;
    do {
      const r = await api('GET', `/api/me/audit?limit=7${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      entries.push(...r.body.entries);
      cursor = r.body.cursor;
      assert.equal(r.body.hasMore, Boolean(cursor));
    } while (cursor);
    assert.ok(entries.every((e) => e.userId === alice.userId));
    const newest = entries[0];
    assert.deepEqual(
      [newest.via, newest.action, newest.outcome, newest.integrationId, newest.service, newest.caller.type],
      ['rest', 'get_issue', 'ok', github.id, 'github', 'api_token'],
    );
    assert.ok(Number.isInteger(newest.durationMs) && newest.durationMs >= 0);
    assert.ok(!Number.isNaN(Date.parse(newest.createdAt)));
    const mcpRuns = entries.filter((e) => e.via === 'mcp');
    assert.ok(mcpRuns.some((e) => e.action === 'create_issue' && e.outcome === 'ok'));
    assert.ok(mcpRuns.some((e) => e.action === 'send_email' && e.service === 'gmail' && e.outcome === 'ok'));
    assert.ok(mcpRuns.some((e) => e.outcome === 'VALIDATION_ERROR'), 'invalid arguments are a run that failed');
    assert.ok(mcpRuns.some((e) => e.outcome !== 'ok' && e.outcome !== 'VALIDATION_ERROR'), 'upstream failures keep their code');
    const text = JSON.stringify(entries);
    for (const arg of ['Filed by an agent', 'friend@example.com', 'Hello over MCP', 'Opened over MCP']) {
      assert.ok(!text.includes(arg), `argument value ${arg} recorded`);
    }
    // Own view only; the admin's view has everyone's and filters by user.
    const bobs = await api('GET', '/api/me/audit', undefined, bob);
    assert.ok(bobs.body.entries.every((e) => e.userId === bob.userId));
    assert.equal((await api('GET', '/api/admin/audit')).status, 403);
    const all = await api('GET', '/api/admin/audit?limit=100', undefined, admin);
    assert.equal(all.status, 200);
    assert.ok(all.body.entries.some((e) => e.userId === alice.userId));
    const onlyBob = await api('GET', `/api/admin/audit?userId=${bob.userId}`, undefined, admin);
    assert.ok(onlyBob.body.entries.every((e) => e.userId === bob.userId));
    const bad = await api('GET', '/api/me/audit?cursor=!!!');
    assert.deepEqual([bad.status, bad.body.code], [400, 'VALIDATION_ERROR']);
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
