// Third-party webhooks (Discord, Xero, HubSpot, Notion) and user webhook triggers: each
// verified over the raw body before any effect, failing closed without its secret, recorded
// once in the admin inbox; triggers create, deliver, deduplicate, refuse bad signatures and
// other users.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, sign, randomUUID } from 'node:crypto';
import { startService, knownSecrets } from '../lib/harness.mjs';

const XERO_KEY = 'xero-webhook-key-for-tests-0000';
const HUBSPOT_SECRET = 'hubspot-client-secret-for-tests';

test('third-party webhooks and user triggers', async (t) => {
  const discord = generateKeyPairSync('ed25519');
  const discordPublic = Buffer.from(discord.publicKey.export({ format: 'jwk' }).x, 'base64url').toString('hex');
  const svc = await startService(t, { vars: { DISCORD_PUBLIC_KEY: discordPublic, XERO_WEBHOOK_KEY: XERO_KEY, HUBSPOT_CLIENT_SECRET: HUBSPOT_SECRET } });
  const admin = await svc.createUser({ email: 'admin@example.com', admin: true });
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  const post = (path, raw, headers = {}) => svc.request('POST', path, { raw, headers: { 'content-type': 'application/json', ...headers } });
  const inbox = async (provider) => (await svc.request('GET', `/api/admin/webhooks/inbox?provider=${provider}`, { token: admin.token })).body.deliveries;

  await t.test('Discord: Ed25519 over timestamp + body; PING; interactions answered in full and recorded once', async () => {
    const signed = (raw, ts = String(Math.floor(Date.now() / 1000)), key = discord.privateKey) =>
      ({ 'x-signature-ed25519': sign(null, Buffer.from(ts + raw), key).toString('hex'), 'x-signature-timestamp': ts });
    const ping = JSON.stringify({ id: '1', type: 1, application_id: 'app' });
    const r = await post('/webhooks/discord', ping, signed(ping));
    assert.deepEqual([r.status, r.body], [200, { type: 1 }]);
    const other = generateKeyPairSync('ed25519');
    for (const headers of [{}, signed(ping, undefined, other.privateKey), { ...signed(ping), 'x-signature-timestamp': '1' }, { 'x-signature-ed25519': 'zz', 'x-signature-timestamp': '1' }]) {
      const bad = await post('/webhooks/discord', ping, headers);
      assert.deepEqual([bad.status, bad.body.code], [401, 'INVALID_SIGNATURE']);
    }
    const tampered = await post('/webhooks/discord', ping.replace('"1"', '"2"'), signed(ping));
    assert.equal(tampered.status, 401);
    const cmd = JSON.stringify({ id: 'interaction-42', type: 2, data: { name: 'deploy' } });
    const first = await post('/webhooks/discord', cmd, signed(cmd));
    // A message now (type 4), not a deferred answer (type 5) that nothing would ever follow up.
    assert.deepEqual([first.status, first.body], [200, { type: 4, data: { content: 'Received `/deploy`.', flags: 64, allowed_mentions: { parse: [] } } }]);
    await post('/webhooks/discord', cmd, signed(cmd));
    const seen = await inbox('discord');
    assert.deepEqual(seen.map((d) => [d.deliveryId, d.eventType]), [['interaction-42', 'deploy']]);
    // Autocomplete wants its choices (type 8); a button press an acknowledgement (type 6).
    const auto = JSON.stringify({ id: 'interaction-43', type: 4, data: { name: 'deploy', options: [{ name: 'env', value: 'pr', focused: true }] } });
    const choices = await post('/webhooks/discord', auto, signed(auto));
    assert.deepEqual([choices.status, choices.body], [200, { type: 8, data: { choices: [] } }]);
    const button = JSON.stringify({ id: 'interaction-44', type: 3, data: { custom_id: 'approve', component_type: 2 } });
    const pressed = await post('/webhooks/discord', button, signed(button));
    assert.deepEqual([pressed.status, pressed.body], [200, { type: 6 }]);
    assert.equal((await inbox('discord')).length, 3);
  });

  await t.test('Xero: intent-to-receive with empty bodies; signed events recorded once', async () => {
    const sig = (raw, key = XERO_KEY) => createHmac('sha256', key).update(raw).digest('base64');
    const intent = JSON.stringify({ events: [], firstEventSequence: 0, lastEventSequence: 0, entropy: 'ABC' });
    const ok = await post('/webhooks/xero', intent, { 'x-xero-signature': sig(intent) });
    assert.deepEqual([ok.status, ok.text], [200, '']);
    const no = await post('/webhooks/xero', intent, { 'x-xero-signature': sig(intent, 'wrong') });
    assert.deepEqual([no.status, no.text], [401, '']);
    const events = JSON.stringify({ events: [{ resourceId: 'r1', eventCategory: 'INVOICE', eventType: 'UPDATE', tenantId: 't' }], firstEventSequence: 7, lastEventSequence: 7, entropy: 'XYZ' });
    assert.equal((await post('/webhooks/xero', events, { 'x-xero-signature': sig(events) })).status, 200);
    assert.equal((await post('/webhooks/xero', events, { 'x-xero-signature': sig(events) })).status, 200);
    assert.deepEqual((await inbox('xero')).map((d) => d.eventType), ['INVOICE.UPDATE']);
  });

  await t.test('HubSpot v3: method + URI + body + timestamp, 5-minute window, deduplicated by eventId', async () => {
    const uri = `${svc.url}/webhooks/hubspot`;
    const sig = (raw, ts, secret = HUBSPOT_SECRET) => createHmac('sha256', secret).update(`POST${uri}${raw}${ts}`).digest('base64');
    const raw = JSON.stringify([{ eventId: 1001, subscriptionType: 'contact.creation', objectId: 5 }, { eventId: 1002, subscriptionType: 'contact.propertyChange', objectId: 5 }]);
    const now = String(Date.now());
    const headers = (ts, s = sig(raw, ts)) => ({ 'x-hubspot-signature-v3': s, 'x-hubspot-request-timestamp': ts });
    const r = await post('/webhooks/hubspot', raw, headers(now));
    assert.deepEqual([r.status, r.body], [200, { received: true, events: 2 }]);
    const again = await post('/webhooks/hubspot', raw, headers(now));
    assert.deepEqual(again.body, { received: true, events: 2, duplicate: true });
    const stale = String(Date.now() - 6 * 60 * 1000);
    assert.equal((await post('/webhooks/hubspot', raw, headers(stale))).status, 401, 'older than 5 minutes');
    assert.equal((await post('/webhooks/hubspot', raw, headers(now, sig(raw, now, 'other')))).status, 401);
    assert.deepEqual((await inbox('hubspot')).map((d) => d.eventType).sort(), ['contact.creation', 'contact.propertyChange']);
  });

  await t.test('Notion: a verification token counts only inside an admin\'s window, is held pending (sealed), and events need the token an admin confirmed', async () => {
    const as = (method, path, body, user = admin) => svc.request(method, path, { token: user.token, body });
    const verify = (token) => post('/webhooks/notion', JSON.stringify({ verification_token: token }));
    const sig = (raw, key) => `sha256=${createHmac('sha256', key).update(raw).digest('hex')}`;
    const event = JSON.stringify({ id: 'evt-1', type: 'page.created', entity: { id: 'p', type: 'page' } });
    const early = await post('/webhooks/notion', event, { 'x-notion-signature': 'sha256=00' });
    assert.deepEqual([early.status, early.body.code], [503, 'WEBHOOK_NOT_CONFIGURED']);
    // Outside a window a verification request is refused and nothing is learnt: an attacker who
    // gets there before Notion cannot plant the key that signs forged events.
    const evil = 'secret_attacker_token_value';
    const planted = await verify(evil);
    assert.deepEqual([planted.status, planted.body.code], [409, 'VERIFICATION_WINDOW_CLOSED']);
    const forged = await post('/webhooks/notion', event, { 'x-notion-signature': sig(event, evil) });
    assert.deepEqual([forged.status, forged.body.code], [503, 'WEBHOOK_NOT_CONFIGURED']);
    const db = await svc.db();
    assert.equal((await db.prepare('SELECT COUNT(*) AS n FROM webhook_verification_pending').first()).n, 0);
    assert.equal(await db.prepare("SELECT 1 FROM webhook_secrets WHERE provider = 'notion'").first(), null);

    // An admin opens a 15-minute window (members may not).
    assert.equal((await as('POST', '/api/admin/webhooks/notion/verification', undefined, alice)).status, 403);
    const opened = await as('POST', '/api/admin/webhooks/notion/verification');
    assert.equal(opened.status, 200, JSON.stringify(opened.body));
    const minutes = (Date.parse(opened.body.windowEndsAt) - Date.now()) / 60_000;
    assert.ok(minutes > 14.5 && minutes <= 15, `${minutes} minutes`);
    // Inside it every token is held pending, the attacker's and Notion's alike, each once.
    const token = `secret_${randomUUID().replace(/-/g, '')}`;
    knownSecrets.add(token);
    for (const tok of [evil, token, token]) assert.deepEqual((await verify(tok)).body, { received: true, verification: true });
    const rows = (await db.prepare("SELECT sealed FROM webhook_verification_pending WHERE provider = 'notion'").all()).results;
    assert.equal(rows.length, 2);
    for (const r of rows) assert.ok(r.sealed.startsWith('enc:v1:') && !r.sealed.includes(token) && !r.sealed.includes(evil));
    // Nothing pending is trusted: events still fail closed.
    for (const key of [evil, token]) assert.equal((await post('/webhooks/notion', event, { 'x-notion-signature': sig(event, key) })).status, 503);
    // Admins see the pending tokens (to paste into Notion, which accepts only its own).
    assert.equal((await as('GET', '/api/admin/webhooks/notion/verification', undefined, alice)).status, 403);
    const listed = await as('GET', '/api/admin/webhooks/notion/verification');
    svc.shownOnce(token);
    assert.deepEqual(listed.body.pending.map((p) => p.token).sort(), [evil, token].sort());
    assert.ok(listed.body.pending.every((p) => !Number.isNaN(Date.parse(p.receivedAt))));
    assert.deepEqual([listed.body.windowEndsAt, listed.body.confirmedAt], [opened.body.windowEndsAt, null]);
    // Confirming: only a token received in the window; members may not.
    const unknown = await as('POST', '/api/admin/webhooks/notion/verification/confirm', { token: 'secret_never_received' });
    assert.deepEqual([unknown.status, unknown.body.code], [404, 'NOT_FOUND']);
    assert.equal((await as('POST', '/api/admin/webhooks/notion/verification/confirm', {})).status, 400);
    assert.equal((await as('POST', '/api/admin/webhooks/notion/verification/confirm', { token }, alice)).status, 403);
    const confirmed = await as('POST', '/api/admin/webhooks/notion/verification/confirm', { token });
    assert.equal(confirmed.status, 200, JSON.stringify(confirmed.body));
    assert.equal(typeof confirmed.body.confirmedAt, 'string');
    assert.ok(!(await db.prepare("SELECT sealed FROM webhook_secrets WHERE provider = 'notion'").first()).sealed.includes(token));
    // Confirming ends the window and drops the other pending tokens.
    const after = await as('GET', '/api/admin/webhooks/notion/verification');
    assert.deepEqual([after.body.pending, after.body.windowEndsAt, after.body.confirmedAt], [[], null, confirmed.body.confirmedAt]);
    assert.equal((await verify('secret_too_late')).status, 409);
    // Events: only the confirmed token signs.
    assert.equal((await post('/webhooks/notion', event, { 'x-notion-signature': sig(event, evil) })).status, 401);
    assert.equal((await post('/webhooks/notion', event, { 'x-notion-signature': sig(event, 'wrong') })).status, 401);
    assert.deepEqual((await post('/webhooks/notion', event, { 'x-notion-signature': sig(event, token) })).body, { received: true });
    assert.deepEqual((await post('/webhooks/notion', event, { 'x-notion-signature': sig(event, token) })).body, { received: true, duplicate: true });
    assert.deepEqual((await inbox('notion')).map((d) => [d.deliveryId, d.eventType]), [['evt-1', 'page.created']]);

    // A new window (to verify again) holds at most 20 tokens; the confirmed one keeps working meanwhile.
    await as('POST', '/api/admin/webhooks/notion/verification');
    for (let i = 0; i < 20; i++) assert.equal((await verify(`secret_flood_${i}`)).status, 200, `token ${i}`);
    const full = await verify('secret_flood_20');
    assert.deepEqual([full.status, full.body.code], [409, 'TOO_MANY_PENDING_TOKENS']);
    assert.equal((await as('GET', '/api/admin/webhooks/notion/verification')).body.pending.length, 20);
    assert.deepEqual((await post('/webhooks/notion', event, { 'x-notion-signature': sig(event, token) })).body, { received: true, duplicate: true });
    // Reopening starts afresh; a window that has ended takes nothing.
    await as('POST', '/api/admin/webhooks/notion/verification');
    assert.deepEqual((await as('GET', '/api/admin/webhooks/notion/verification')).body.pending, []);
    await db.prepare("UPDATE webhook_verification_windows SET ends_at = ? WHERE provider = 'notion'").bind(new Date(Date.now() - 1000).toISOString()).run();
    assert.equal((await verify('secret_after_the_window')).status, 409);
    assert.equal((await as('GET', '/api/admin/webhooks/notion/verification')).body.windowEndsAt, null);

    // The "shown once" read is gone (the pending list replaced it); DELETE forgets the confirmed token.
    assert.equal((await as('GET', '/api/admin/webhooks/notion/verification-token')).status, 405);
    assert.deepEqual((await as('DELETE', '/api/admin/webhooks/notion/verification-token')).body, { ok: true });
    assert.equal((await post('/webhooks/notion', event, { 'x-notion-signature': sig(event, token) })).status, 503);
    assert.equal((await as('GET', '/api/admin/webhooks/notion/verification')).body.confirmedAt, null);
  });

  await t.test('Discord\'s verification passes RFC 8032 test vector 2 (the runtime\'s WebCrypto Ed25519)', async () => {
    // Message "r" = timestamp "r" + an empty body: the signature is valid, the body is not JSON.
    await svc.reconfigure({ DISCORD_PUBLIC_KEY: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c' });
    const vector = '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00';
    const ok = await post('/webhooks/discord', '', { 'x-signature-ed25519': vector, 'x-signature-timestamp': 'r' });
    assert.deepEqual([ok.status, ok.body.code], [400, 'INVALID_JSON'], 'verified, then refused as not JSON');
    const flipped = `${vector.slice(0, -2)}01`;
    assert.equal((await post('/webhooks/discord', '', { 'x-signature-ed25519': flipped, 'x-signature-timestamp': 'r' })).status, 401);
  });

  await t.test('fail closed: no secret configured means deliveries are refused', async () => {
    await svc.reconfigure({ DISCORD_PUBLIC_KEY: undefined, XERO_WEBHOOK_KEY: undefined, HUBSPOT_CLIENT_SECRET: undefined });
    for (const p of ['discord', 'xero', 'hubspot']) {
      const r = await post(`/webhooks/${p}`, '{}');
      assert.deepEqual([r.status, r.body.code], [503, 'WEBHOOK_NOT_CONFIGURED'], p);
    }
    const all = await svc.request('GET', '/api/admin/webhooks/inbox?limit=2', { token: admin.token });
    assert.equal(all.body.deliveries.length, 2);
    assert.equal(all.body.hasMore, true);
    const next = await svc.request('GET', `/api/admin/webhooks/inbox?limit=100&cursor=${all.body.cursor}`, { token: admin.token });
    assert.equal(next.body.deliveries.length, 7 - 2, 'three Discord interactions, Xero, two HubSpot events, Notion');
    assert.equal((await svc.request('GET', '/api/admin/webhooks/inbox?provider=myspace', { token: admin.token })).status, 400);
  });

  await t.test('user triggers: create, signed delivery becomes a prompt once, duplicates, bad signatures, other users', async () => {
    const session = (await svc.request('POST', '/api/sessions', { token: alice.token, body: { workspace: 'w' } })).body.session;
    const create = (body, user = alice) => svc.request('POST', '/api/webhook-triggers', { token: user.token, body });
    for (const [body, field] of [
      [{ path: 'github/x', promptTemplate: 't' }, 'path'], [{ path: 'Bad Path', promptTemplate: 't' }, 'path'],
      [{ path: 'ok', promptTemplate: '' }, 'promptTemplate'], [{ path: 'ok', promptTemplate: 't', method: 'GET' }, 'method'],
    ]) {
      const r = await create(body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.details[0].field, field);
    }
    assert.equal((await create({ path: 'ok', promptTemplate: 't', sessionId: session.id }, bob)).status, 404, 'another user\'s session');
    const made = await create({ path: 'deploys/prod', sessionId: session.id, promptTemplate: 'Deploy of {{payload.repo}} at {{payload.sha}}' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const { trigger, secret } = made.body;
    svc.shownOnce(secret);
    assert.match(secret, /^whsec_/);
    assert.deepEqual([trigger.path, trigger.method, trigger.sessionId, trigger.url], ['deploys/prod', 'POST', session.id, `${svc.url}/webhooks/deploys/prod`]);
    assert.equal((await create({ path: 'deploys/prod', promptTemplate: 'x' }, bob)).body.code, 'TRIGGER_PATH_TAKEN');
    const listed = await svc.request('GET', '/api/webhook-triggers', { token: alice.token });
    assert.deepEqual(listed.body.triggers.map((x) => x.id), [trigger.id]);
    assert.ok(!listed.text.includes(secret));
    assert.deepEqual((await svc.request('GET', '/api/webhook-triggers', { token: bob.token })).body.triggers, []);

    const raw = JSON.stringify({ repo: 'alice/app', sha: 'abc123' });
    const sig = (body, key = secret) => `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;
    const deliver = (body, headers) => svc.request('POST', '/webhooks/deploys/prod?env=prod', { raw: body, headers: { 'content-type': 'application/json', ...headers } });
    assert.deepEqual([(await deliver(raw, {})).status, (await deliver(raw, { 'x-webhook-signature': sig(raw, 'nope') })).status], [401, 401]);
    const first = await deliver(raw, { 'x-webhook-signature': sig(raw), 'x-webhook-id': 'd-1' });
    assert.equal(first.status, 202, JSON.stringify(first.body));
    assert.ok(first.body.promptId);
    const repeat = await deliver(raw, { 'x-webhook-signature': sig(raw), 'x-webhook-id': 'd-1' });
    assert.deepEqual([repeat.status, repeat.body], [200, { received: true, duplicate: true }]);
    // Without a delivery id the body's hash identifies it; GitHub's header is honoured too.
    const other = JSON.stringify({ repo: 'alice/app', sha: 'def456' });
    assert.equal((await deliver(other, { 'x-hub-signature-256': sig(other) })).status, 202);
    assert.equal((await deliver(other, { 'x-hub-signature-256': sig(other) })).status, 200);
    const queue = (await svc.request('GET', `/api/sessions/${session.id}/queue`, { token: alice.token })).body.prompts;
    assert.equal(queue.length, 2);
    assert.equal(queue[0].content, 'Deploy of alice/app at abc123');
    assert.deepEqual([queue[0].channelType, queue[0].channelId], ['api', `webhook:${trigger.id}`]);
    assert.equal((await svc.request('PUT', '/webhooks/deploys/prod', { raw, headers: { 'x-webhook-signature': sig(raw) } })).status, 405);
    assert.equal((await svc.request('POST', '/webhooks/nothing-here', { raw, headers: { 'x-webhook-signature': sig(raw) } })).status, 404);

    // Without a session the owner's orchestrator gets it (created when missing).
    const orch = await create({ path: 'to-orchestrator', promptTemplate: '{{payload}}' });
    svc.shownOnce(orch.body.secret);
    const r = await svc.request('POST', '/webhooks/to-orchestrator', { raw, headers: { 'x-webhook-signature': sig(raw, orch.body.secret) } });
    assert.equal(r.status, 202);
    const o = (await svc.request('POST', '/api/me/orchestrator', { token: alice.token })).body.session;
    const oq = (await svc.request('GET', `/api/sessions/${o.id}/queue`, { token: alice.token })).body.prompts;
    assert.equal(oq[0].content, raw);

    assert.equal((await svc.request('DELETE', `/api/webhook-triggers/${trigger.id}`, { token: bob.token })).status, 404);
    assert.deepEqual((await svc.request('DELETE', `/api/webhook-triggers/${trigger.id}`, { token: alice.token })).body, { success: true });
    assert.equal((await deliver(raw, { 'x-webhook-signature': sig(raw), 'x-webhook-id': 'd-2' })).status, 404);
  });

  await t.test('trigger templates: at most 8 KB; a prompt that would pass the content limit is refused (413) before anything is built or recorded', async () => {
    const create = (body) => svc.request('POST', '/api/webhook-triggers', { token: alice.token, body });
    const made = await create({ path: 'expands', promptTemplate: 'Payload: {{payload}}\n'.repeat(10) });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    svc.shownOnce(made.body.secret);
    const deliver = (path, secret, body, id) => svc.request('POST', `/webhooks/${path}`, {
      raw: body, headers: { 'content-type': 'application/json', 'x-webhook-signature': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`, 'x-webhook-id': id },
    });
    // Ten copies of a 20,000-character payload: twice the 100,000-character prompt limit.
    const big = JSON.stringify({ text: 'a'.repeat(20_000) });
    const refused = await deliver('expands', made.body.secret, big, 'retry-me');
    assert.deepEqual([refused.status, refused.body.code], [413, 'PAYLOAD_TOO_LARGE']);
    // Nothing was recorded: the sender's retry of that delivery with a body that fits goes through.
    const retried = await deliver('expands', made.body.secret, JSON.stringify({ text: 'fits' }), 'retry-me');
    assert.equal(retried.status, 202, JSON.stringify(retried.body));
    // Templates themselves: at most 8 KB (8,192 bytes).
    for (const promptTemplate of ['x'.repeat(8193), '{{payload}}'.repeat(1500), 'é'.repeat(4097)]) {
      const r = await create({ path: 'too-big', promptTemplate });
      assert.deepEqual([r.status, r.body.code, r.body.details?.[0]?.field], [400, 'VALIDATION_ERROR', 'promptTemplate'], `${promptTemplate.length} characters`);
    }
    assert.equal((await create({ path: 'just-fits', promptTemplate: 'x'.repeat(8192) })).status, 201);
    // 700 placeholders and a 1 MB body (700 MB expanded) are refused at once, with nothing built.
    const wide = await create({ path: 'expands-wide', promptTemplate: '{{payload}}'.repeat(700) });
    assert.equal(wide.status, 201);
    svc.shownOnce(wide.body.secret);
    const t0 = Date.now();
    const huge = await deliver('expands-wide', wide.body.secret, JSON.stringify({ text: 'b'.repeat(1_000_000) }), 'huge');
    assert.deepEqual([huge.status, huge.body.code], [413, 'PAYLOAD_TOO_LARGE']);
    assert.ok(Date.now() - t0 < 5000, `${Date.now() - t0} ms`);
  });

  await t.test('trigger deliveries: a replay under a new id is a duplicate; query values come only from a signed query', async () => {
    const create = (body) => svc.request('POST', '/api/webhook-triggers', { token: alice.token, body });
    const hmac = (secret, text) => `sha256=${createHmac('sha256', secret).update(text).digest('hex')}`;
    const send = (target, body, signature, id) => svc.request('POST', target, {
      raw: body, headers: { 'content-type': 'application/json', 'x-webhook-signature': signature, ...(id ? { 'x-webhook-id': id } : {}) },
    });
    const orchestrator = (await svc.request('POST', '/api/me/orchestrator', { token: alice.token })).body.session;
    const content = async (promptId) => (await svc.request('GET', `/api/sessions/${orchestrator.id}/queue?limit=100`, { token: alice.token }))
      .body.prompts.find((p) => p.id === promptId)?.content;

    // The body's HMAC does not cover X-Webhook-Id: a captured delivery replayed under a new id (or
    // none) is the same delivery; a seen id with another body is a duplicate as well.
    const plain = await create({ path: 'replays', promptTemplate: 'Build {{payload.n}}' });
    assert.equal(plain.status, 201, JSON.stringify(plain.body));
    svc.shownOnce(plain.body.secret);
    const one = JSON.stringify({ n: 1 });
    assert.equal((await send('/webhooks/replays', one, hmac(plain.body.secret, one), 'a-1')).status, 202);
    for (const id of ['a-2', undefined]) {
      const replay = await send('/webhooks/replays', one, hmac(plain.body.secret, one), id);
      assert.deepEqual([replay.status, replay.body], [200, { received: true, duplicate: true }], `replayed as ${id}`);
    }
    const two = JSON.stringify({ n: 2 });
    assert.deepEqual((await send('/webhooks/replays', two, hmac(plain.body.secret, two), 'a-1')).body, { received: true, duplicate: true });
    assert.equal((await send('/webhooks/replays', two, hmac(plain.body.secret, two), 'a-3')).status, 202, 'a refused duplicate recorded nothing');
    assert.equal(plain.body.trigger.signQuery, false);

    // {{query.*}} needs signQuery: the signature then covers the request target, a newline, the body.
    const unsigned = await create({ path: 'query-unsigned', promptTemplate: 'Deploy to {{ query.env }}' });
    assert.deepEqual([unsigned.status, unsigned.body.code, unsigned.body.details?.[0]?.field], [400, 'VALIDATION_ERROR', 'promptTemplate']);
    assert.equal((await create({ path: 'query-bad', signQuery: 'yes', promptTemplate: 'x' })).body.details?.[0]?.field, 'signQuery');
    const signed = await create({ path: 'query-signed', signQuery: true, promptTemplate: 'Deploy {{payload.sha}} to {{query.env}}' });
    assert.equal(signed.status, 201, JSON.stringify(signed.body));
    assert.equal(signed.body.trigger.signQuery, true);
    svc.shownOnce(signed.body.secret);
    const listed = (await svc.request('GET', '/api/webhook-triggers', { token: alice.token })).body.triggers;
    assert.deepEqual(listed.filter((x) => x.path.startsWith('query-') || x.path === 'replays').map((x) => [x.path, x.signQuery]).sort(), [['query-signed', true], ['replays', false]]);
    const body = JSON.stringify({ sha: 'abc' });
    const target = '/webhooks/query-signed?env=prod';
    const bodyOnly = await send(target, body, hmac(signed.body.secret, body));
    assert.deepEqual([bodyOnly.status, bodyOnly.body.code], [401, 'INVALID_SIGNATURE'], 'the body alone is not what is signed');
    const swapped = await send('/webhooks/query-signed?env=evil', body, hmac(signed.body.secret, `${target}\n${body}`));
    assert.equal(swapped.status, 401, 'a query changed after signing');
    const ok = await send(target, body, hmac(signed.body.secret, `${target}\n${body}`), 'q-1');
    assert.equal(ok.status, 202, JSON.stringify(ok.body));
    assert.equal(await content(ok.body.promptId), 'Deploy abc to prod');

    // A trigger stored before signQuery existed, with a query placeholder: it renders empty.
    const db = await svc.db();
    await db.prepare("UPDATE webhook_triggers SET prompt_template = 'Build {{payload.n}} for {{query.env}}' WHERE path = 'replays'").run();
    const three = JSON.stringify({ n: 3 });
    const legacy = await send('/webhooks/replays?env=evil', three, hmac(plain.body.secret, three));
    assert.equal(legacy.status, 202, JSON.stringify(legacy.body));
    assert.equal(await content(legacy.body.promptId), 'Build 3 for ');
  });

  await t.test('no secret in any response or log line', () => {
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
