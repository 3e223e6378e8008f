// The Telegram bot against a fake Bot API: setup/get/disconnect, the authenticated webhook,
// update idempotency, every command, media, routing, and replies back to chats.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeTelegram } from '../lib/fake-telegram.mjs';

const BOT = '123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw';
const BOT2 = '987654321:ZZHdqTcvCH1vGWJxfSeofSAs0K5PALDxyz';
const CHAT = '4242';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('Telegram bot', async (t) => {
  const tg = await startFakeTelegram(t);
  tg.addBot(BOT, 123456789, 'agent_bot');
  tg.addBot(BOT2, 987654321, 'other_bot');
  knownSecrets.add(BOT);
  knownSecrets.add(BOT2);
  const svc = await startService(t, { upstreams: { telegram: tg.url }, vars: { PUBLIC_URL: 'https://svc.example.com' } });
  const alice = await svc.createUser({ email: 'alice@example.com', name: 'Alice' });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  let db = await svc.db();
  let updateId = 1000;
  const secretOf = (token) => tg.webhooks.get(token)?.secret_token;
  // A private chat's id is its user's id.
  const deliver = (user, message, { secret = secretOf(BOT), id = ++updateId, from = Number(CHAT), chat = { id: Number(CHAT), type: 'private' }, isBot = false } = {}) =>
    svc.request('POST', `/telegram/webhook/${user.userId}`, {
      body: { update_id: id, message: { message_id: id, date: 1, chat, from: { id: from, is_bot: isBot, first_name: 'Tele', last_name: 'Gram' }, ...message } },
      headers: secret ? { 'x-telegram-bot-api-secret-token': secret } : {},
    });
  const lastReply = () => tg.messagesTo(CHAT).at(-1)?.text;
  let pairingCode;
  const messagesOf = async (user, sessionId) => (await svc.request('GET', `/api/sessions/${sessionId}/messages`, { token: user.token })).body.messages;

  await t.test('setup validates the token, registers an authenticated webhook and the commands', async () => {
    const badFormat = await svc.request('POST', '/api/me/telegram', { token: alice.token, body: { botToken: 'nope' } });
    assert.equal(badFormat.status, 400);
    assert.equal(badFormat.body.code, 'VALIDATION_ERROR');
    const unknown = await svc.request('POST', '/api/me/telegram', { token: alice.token, body: { botToken: '111111111:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' } });
    assert.equal(unknown.status, 400);
    assert.deepEqual(unknown.body, { error: 'Invalid bot token — could not reach Telegram API', code: 'INVALID_BOT_TOKEN' });
    const r = await svc.request('POST', '/api/me/telegram', { token: alice.token, body: { botToken: ` ${BOT} `.trim() } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.webhookUrl, `https://svc.example.com/telegram/webhook/${alice.userId}`);
    assert.deepEqual([r.body.config.userId, r.body.config.botUsername, r.body.config.webhookActive], [alice.userId, 'agent_bot', true]);
    assert.equal(JSON.parse(r.body.config.botInfo).id, 123456789);
    assert.equal(r.body.config.paired, false);
    pairingCode = r.body.pairingCode;
    assert.match(pairingCode, /^[A-Za-z0-9_-]{8}$/);
    svc.shownOnce(pairingCode, 2); // the code and the t.me link
    assert.equal(r.body.pairingLink, `https://t.me/agent_bot?start=${pairingCode}`);
    const hook = tg.webhooks.get(BOT);
    assert.equal(hook.url, r.body.webhookUrl);
    assert.match(hook.secret_token, /^[A-Za-z0-9_-]{32,256}$/);
    assert.deepEqual(hook.allowed_updates, ['message']);
    assert.deepEqual(tg.commands.get(BOT).map((c) => c.command), ['help', 'stop', 'clear', 'status', 'refresh', 'sessions']);
    const got = await svc.request('GET', '/api/me/telegram', { token: alice.token });
    assert.deepEqual(got.body.config, r.body.config);
    assert.ok(!got.text.includes(BOT));
    const row = await db.prepare('SELECT bot_token_encrypted, webhook_secret_hash FROM user_telegram_config WHERE user_id = ?').bind(alice.userId).first();
    assert.match(row.bot_token_encrypted, /^enc:v1:/);
    assert.notEqual(row.webhook_secret_hash, hook.secret_token);
    assert.deepEqual((await svc.request('GET', '/api/me/telegram', { token: bob.token })).body, { config: null });
  });

  await t.test('a failing setWebhook answers 502 and saves nothing new', async () => {
    tg.failSetWebhook = true;
    const r = await svc.request('POST', '/api/me/telegram', { token: bob.token, body: { botToken: BOT2 } });
    assert.equal(r.status, 502);
    assert.match(r.body.error, /Telegram refused the webhook/);
    assert.deepEqual((await svc.request('GET', '/api/me/telegram', { token: bob.token })).body, { config: null });
    tg.failSetWebhook = false;
  });

  await t.test('webhook: secret required, body validated, unknown users 404', async () => {
    for (const secret of [null, 'wrong-secret']) {
      const r = await deliver(alice, { text: 'hi' }, { secret });
      assert.equal(r.status, 401);
      assert.equal(r.body.code, 'INVALID_SECRET');
    }
    const noId = await svc.request('POST', `/telegram/webhook/${alice.userId}`, { body: { message: {} }, headers: { 'x-telegram-bot-api-secret-token': secretOf(BOT) } });
    assert.equal(noId.status, 400);
    const junk = await svc.request('POST', `/telegram/webhook/${alice.userId}`, { raw: '{oops', headers: { 'x-telegram-bot-api-secret-token': secretOf(BOT) } });
    assert.equal(junk.status, 400);
    // Without the secret nothing about the body is answered: junk or a duplicate, still 401.
    for (const raw of ['{oops', JSON.stringify({ update_id: 1, message: { chat: { id: 1 }, text: 'x' } })]) {
      const r = await svc.request('POST', `/telegram/webhook/${alice.userId}`, { raw, headers: { 'x-telegram-bot-api-secret-token': 'wrong-secret' } });
      assert.deepEqual([r.status, r.body.code], [401, 'INVALID_SECRET']);
    }
    assert.equal((await deliver(bob, { text: 'hi' })).status, 404);
  });

  await t.test('the bot answers only its paired owner', async () => {
    await deliver(alice, { text: 'hello?' });
    assert.match(lastReply(), /^This bot is private/);
    await deliver(alice, { text: '/start not-the-code' });
    assert.match(lastReply(), /^This bot is private/);
    // The right code, but from a group (an anonymous group admin would pair as
    // GroupAnonymousBot), from a bot, or after the hour: refused.
    await deliver(alice, { text: `/start ${pairingCode}` }, { chat: { id: -100777, type: 'supergroup' }, from: 1087968824, isBot: true });
    assert.equal(tg.messagesTo('-100777').at(-1)?.text.startsWith('This bot is private'), true);
    await deliver(alice, { text: `/start ${pairingCode}` }, { isBot: true });
    assert.match(lastReply(), /^This bot is private/);
    await db.prepare("UPDATE user_telegram_config SET pairing_expires_at = '2000-01-01T00:00:00.000Z' WHERE user_id = ?").bind(alice.userId).run();
    await deliver(alice, { text: `/start ${pairingCode}` });
    assert.match(lastReply(), /^This bot is private/);
    await db.prepare('UPDATE user_telegram_config SET pairing_expires_at = ? WHERE user_id = ?').bind(new Date(Date.now() + 60000).toISOString(), alice.userId).run();
    assert.equal((await svc.request('GET', '/api/me/telegram', { token: alice.token })).body.config.paired, false);
    await deliver(alice, { text: `/start ${pairingCode}` });
    assert.match(lastReply(), /^Paired!/);
    assert.equal((await svc.request('GET', '/api/me/telegram', { token: alice.token })).body.config.paired, true);
    // The code is spent, and strangers are refused from now on.
    await deliver(alice, { text: `/start ${pairingCode}` }, { from: 999 });
    assert.match(lastReply(), /^This bot is private/);
    await svc.request('POST', '/api/me/orchestrator', { token: alice.token });
    const orchestrator = (await svc.request('POST', '/api/me/orchestrator', { token: alice.token })).body.session;
    await deliver(alice, { text: 'let me in' }, { from: 999 });
    assert.match(lastReply(), /^This bot is private/);
    assert.deepEqual(await messagesOf(alice, orchestrator.id), []);
    // (Back to no orchestrator for the next test.)
    await db.prepare("UPDATE sessions SET status = 'terminated' WHERE id = ?").bind(orchestrator.id).run();
  });

  await t.test('an update whose processing dies is processed once on Telegram\'s retry', async () => {
    const orchestrator = (await svc.request('POST', '/api/me/orchestrator', { token: alice.token })).body.session;
    await svc.reconfigure({ FAULT_TELEGRAM_DIE_AFTER_PROCESSING: '1' });
    db = await svc.db();
    const first = await deliver(alice, { text: 'survive this' }, { id: 90_001 }).catch((e) => ({ status: 'dropped', e }));
    assert.notEqual(first.status, 200, 'the worker died mid-update');
    const retry = await deliver(alice, { text: 'survive this' }, { id: 90_001 });
    assert.deepEqual([retry.status, retry.body.duplicate], [200, undefined], 'the retry is processed, not taken for a duplicate');
    const again = await deliver(alice, { text: 'survive this' }, { id: 90_001 });
    assert.equal(again.body.duplicate, true);
    const stored = (await messagesOf(alice, orchestrator.id)).filter((m) => m.content === 'survive this');
    assert.equal(stored.length, 1, 'stored once');
    await svc.reconfigure({ FAULT_TELEGRAM_DIE_AFTER_PROCESSING: undefined });
    db = await svc.db();
    await db.prepare("UPDATE sessions SET status = 'terminated' WHERE id = ?").bind(orchestrator.id).run();
  });

  await t.test('without an orchestrator the chat is told so', async () => {
    const r = await deliver(alice, { text: 'anyone?' });
    assert.equal(r.status, 200);
    assert.equal(lastReply(), 'Your orchestrator is not running. Start it from the Agent-Ops dashboard.');
  });

  let orch;
  await t.test('text reaches the orchestrator once, even when Telegram delivers it three times', async () => {
    orch = (await svc.request('POST', '/api/me/orchestrator', { token: alice.token })).body.session;
    const id = ++updateId;
    for (let i = 0; i < 3; i++) assert.equal((await deliver(alice, { text: 'build it' }, { id })).status, 200);
    const msgs = await messagesOf(alice, orch.id);
    assert.equal(msgs.length, 1);
    assert.deepEqual([msgs[0].content, msgs[0].channelType, msgs[0].channelId, msgs[0].authorName, msgs[0].authorId], ['build it', 'telegram', CHAT, 'Tele Gram', alice.userId]);
    const fwd = await deliver(alice, { text: 'original', forward_origin: { type: 'user', sender_user: { first_name: 'Ada', username: 'ada' } } });
    assert.equal(fwd.status, 200);
    assert.equal((await messagesOf(alice, orch.id)).at(-1).content, '**Forwarded from Ada (@ada):**\n> original');
  });

  await t.test('media: photo (largest), voice, audio, image document arrive as attachments', async () => {
    tg.addFile('photo-small', 'photos/s.jpg', Buffer.alloc(10, 1));
    tg.addFile('photo-big', 'photos/file_9.png', Buffer.alloc(3000, 2));
    tg.addFile('voice-1', 'voice/file_1.oga', Buffer.alloc(500, 3));
    tg.addFile('audio-1', 'music/file_2.mp3', Buffer.alloc(700, 4));
    tg.addFile('doc-1', 'documents/file_3.png', Buffer.alloc(40, 5));
    await deliver(alice, { photo: [{ file_id: 'photo-small', file_size: 10 }, { file_id: 'photo-big', file_size: 3000 }], caption: 'look' });
    await deliver(alice, { voice: { file_id: 'voice-1', duration: 4, mime_type: 'audio/ogg', file_size: 500 } });
    await deliver(alice, { audio: { file_id: 'audio-1', duration: 9, title: 'Song', file_name: 'song.mp3', mime_type: 'audio/mpeg', file_size: 700 } });
    await deliver(alice, { document: { file_id: 'doc-1', file_name: 'shot.png', mime_type: 'image/png', file_size: 40 } });
    const msgs = (await messagesOf(alice, orch.id)).slice(-4);
    assert.deepEqual(msgs.map((m) => m.content), ['look', '[Voice note, 4s]', '[Audio: Song, 9s]', '[File: shot.png]']);
    assert.deepEqual(msgs.map((m) => m.attachments[0]), [
      { mime: 'image/png', filename: 'file_9.png', size: 3000 },
      { mime: 'audio/ogg', filename: 'file_1.oga', size: 500 },
      { mime: 'audio/mpeg', filename: 'song.mp3', size: 700 },
      { mime: 'image/png', filename: 'shot.png', size: 40 },
    ]);
    // The runner gets the bytes, not a Telegram URL.
    const queue = (await svc.request('GET', `/api/sessions/${orch.id}/queue`, { token: alice.token })).body.prompts;
    assert.ok(queue.length >= 5);
  });

  await t.test('media edge cases: too large, download failure, unsupported kinds', async () => {
    await deliver(alice, { photo: [{ file_id: 'huge', file_size: 20_000_000 }] });
    assert.match(lastReply(), /too large/);
    // Over the limit without a size in the update: getFile's size refuses it before any download;
    // without one there either, the download is cut off at the limit.
    tg.addFile('big-announced', 'photos/big1.jpg', Buffer.alloc(9_500_000, 7));
    tg.addFile('big-hidden', 'photos/big2.jpg', Buffer.alloc(9_500_000, 8), { hideSize: true });
    for (const file_id of ['big-announced', 'big-hidden']) {
      await deliver(alice, { photo: [{ file_id }] });
      assert.match(lastReply(), /too large/, file_id);
    }
    await deliver(alice, { voice: { file_id: 'missing-file', duration: 1 } });
    assert.equal(lastReply(), 'Failed to download the voice note.');
    await deliver(alice, { sticker: { file_id: 's' } });
    assert.match(lastReply(), /^Sorry, sticker messages are not supported yet/);
    await deliver(alice, { document: { file_id: 'pdf', mime_type: 'application/pdf' } });
    assert.match(lastReply(), /^Sorry, document messages/);
  });

  await t.test('a bound chat goes to its session with the binding\'s queue mode', async () => {
    const s = (await svc.request('POST', '/api/sessions', { token: alice.token, body: { workspace: 'bound', title: 'Bound work' } })).body.session;
    const b = await svc.request('POST', '/api/channels/bindings', { token: alice.token, body: { sessionId: s.id, channelType: 'telegram', channelId: CHAT, queueMode: 'steer' } });
    assert.equal(b.status, 201);
    await deliver(alice, { text: 'to the bound session' });
    const msgs = await messagesOf(alice, s.id);
    assert.deepEqual(msgs.map((m) => [m.content, m.authorName]), [['to the bound session', 'Tele Gram']]);
    const q = (await svc.request('GET', `/api/sessions/${s.id}/queue`, { token: alice.token })).body.prompts;
    assert.equal(q[0].queueMode, 'steer');
    await svc.request('DELETE', `/api/channels/bindings/${b.body.binding.id}`, { token: alice.token });
  });

  await t.test('commands: start, help, status, sessions, clear, stop, refresh', async () => {
    await deliver(alice, { text: '/start' });
    assert.match(lastReply(), /^Connected to Agent-Ops!/);
    await deliver(alice, { text: '/help@agent_bot' });
    assert.equal(lastReply(), 'Available commands:\n/help — List available commands\n/stop — Abort current agent work\n/clear — Clear prompt queue\n/status — Show session status + children\n/refresh — Restart orchestrator session\n/sessions — List child sessions with status');
    await svc.request('POST', '/api/sessions', { token: alice.token, body: { workspace: 'kid', title: 'Child <one>', parentSessionId: orch.id } });
    await deliver(alice, { text: '/status' });
    const status = tg.messagesTo(CHAT).at(-1);
    assert.equal(status.parse_mode, 'HTML');
    assert.match(status.text, /^<b>Orchestrator Status<\/b>\nStatus: idle\nQueued prompts: \d+/);
    assert.match(status.text, /Children \(1\):\n• Child &lt;one&gt; — idle/);
    await deliver(alice, { text: '/sessions' });
    assert.equal(lastReply(), 'Child sessions (1):\n• Child <one> — idle');
    const claimed = await svc.request('POST', `/api/sessions/${orch.id}/queue/claim`, { token: alice.token });
    assert.equal(claimed.status, 200);
    await deliver(alice, { text: '/clear' });
    assert.match(lastReply(), /^Prompt queue cleared \(\d+ removed\)\.$/);
    await deliver(alice, { text: 'one more' });
    await deliver(alice, { text: '/stop' });
    assert.equal(lastReply(), 'Stopped current work and cleared queue (1 interrupted, 1 cleared).');
    const prompts = (await svc.request('GET', `/api/sessions/${orch.id}/queue`, { token: alice.token })).body.prompts;
    assert.ok(prompts.every((p) => p.status !== 'queued' && p.status !== 'processing'));
    // /refresh: a fresh orchestrator; bindings and children follow it.
    const tgBinding = await svc.request('POST', '/api/channels/bindings', { token: alice.token, body: { sessionId: orch.id, channelType: 'telegram', channelId: '999' } });
    await deliver(alice, { text: '/refresh' });
    assert.match(lastReply(), /^Started a fresh orchestrator session/);
    const fresh = (await svc.request('POST', '/api/me/orchestrator', { token: alice.token })).body.session;
    assert.notEqual(fresh.id, orch.id);
    assert.equal((await svc.request('GET', `/api/sessions/${orch.id}`, { token: alice.token })).body.session.status, 'terminated');
    const bindings = (await svc.request('GET', '/api/channels/bindings', { token: alice.token })).body.bindings;
    assert.equal(bindings.find((x) => x.id === tgBinding.body.binding.id).sessionId, fresh.id);
    assert.equal((await svc.request('GET', `/api/sessions/${fresh.id}/children`, { token: alice.token })).body.sessions.length, 1);
    await deliver(alice, { text: 'after refresh' });
    assert.equal((await messagesOf(alice, fresh.id)).at(-1).content, 'after refresh');
    orch = fresh;
  });

  await t.test('replies: a 10,000-character Markdown reply arrives as valid chunks', async () => {
    const md = Array.from({ length: 120 }, (_, i) => `Line ${i} has **bold**, _italics_, \`code_${i}\` and a [link](https://example.com/a_b?x=${i}&y=1).`).join('\n\n');
    assert.ok(md.length >= 10_000);
    const before = tg.messagesTo(CHAT).length;
    const r = await svc.request('POST', `/api/sessions/${orch.id}/reply`, { token: alice.token, body: { channelType: 'telegram', channelId: CHAT, text: md } });
    assert.equal(r.status, 202);
    const sent = tg.messagesTo(CHAT).slice(before);
    assert.equal(r.body.parts, sent.length);
    assert.ok(sent.length >= 3);
    for (const m of sent) assert.equal(m.parse_mode, 'HTML');
    const text = sent.map((m) => m.text).join('\n');
    assert.ok(text.includes('<a href="https://example.com/a_b?x=7&amp;y=1">link</a>'));
    assert.ok(text.includes('<code>code_119</code>'));
  });

  await t.test('replies: a message Telegram rejects is resent as plain text; 429 is waited out', async () => {
    tg.fake.fault(/sendMessage$/, { status: 400, json: { ok: false, error_code: 400, description: "Bad Request: can't parse entities: Unsupported start tag" } });
    const r = await svc.request('POST', `/api/sessions/${orch.id}/reply`, { token: alice.token, body: { channelType: 'telegram', channelId: CHAT, text: '**done** & dusted' } });
    assert.equal(r.status, 202);
    const last = tg.messagesTo(CHAT).at(-1);
    assert.deepEqual([last.text, last.parse_mode], ['done & dusted', undefined]);
    tg.fake.fault(/sendMessage$/, { status: 429, json: { ok: false, error_code: 429, description: 'Too Many Requests: retry after 1', parameters: { retry_after: 1 } } });
    const t0 = Date.now();
    const slow = await svc.request('POST', `/api/sessions/${orch.id}/reply`, { token: alice.token, body: { channelType: 'telegram', channelId: CHAT, text: 'eventually' } });
    assert.equal(slow.status, 202);
    assert.ok(Date.now() - t0 >= 900);
    assert.equal(lastReply(), 'eventually');
  });

  await t.test('replies: photos with long captions, validation, ownership', async () => {
    const png = Buffer.from([0x89, 0x50, 0x4e, 0x47, 1, 2, 3, 4]);
    const caption = 'c'.repeat(1500);
    const before = tg.messagesTo(CHAT).length;
    const r = await svc.request('POST', `/api/sessions/${orch.id}/reply`, {
      token: alice.token, body: { channelType: 'telegram', channelId: CHAT, photo: { data: png.toString('base64'), mimeType: 'image/png' }, caption },
    });
    assert.equal(r.status, 202);
    const sent = tg.messagesTo(CHAT).slice(before);
    assert.equal(sent[0].method, 'sendPhoto');
    assert.deepEqual([...sent[0].photoBytes], [...png]);
    assert.equal(sent[0].filename, 'image.png');
    assert.equal(sent[0].caption, undefined, 'an over-long caption follows as a message');
    assert.equal(sent[1].text, caption);
    for (const body of [{ channelType: 'slack', channelId: '1', text: 'x' }, { channelType: 'telegram', channelId: 'abc', text: 'x' }, { channelType: 'telegram', channelId: CHAT }, { channelType: 'telegram', channelId: CHAT, photo: { data: '!!', mimeType: 'image/png' } }]) {
      assert.equal((await svc.request('POST', `/api/sessions/${orch.id}/reply`, { token: alice.token, body })).status, 400, JSON.stringify(body));
    }
    assert.equal((await svc.request('POST', `/api/sessions/${orch.id}/reply`, { token: bob.token, body: { channelType: 'telegram', channelId: CHAT, text: 'x' } })).status, 404);
  });

  await t.test('a completed prompt from Telegram is answered in its chat', async () => {
    await svc.request('POST', `/api/sessions/${orch.id}/queue/clear`, { token: alice.token });
    await deliver(alice, { text: 'what is 2+2?' });
    const claimed = await svc.request('POST', `/api/sessions/${orch.id}/queue/claim`, { token: alice.token });
    assert.equal(claimed.body.prompt.content, 'what is 2+2?');
    const done = await svc.request('POST', `/api/sessions/${orch.id}/queue/${claimed.body.prompt.id}/complete`, { token: alice.token, body: { result: 'It is **4**.' } });
    assert.equal(done.status, 200);
    assert.deepEqual(done.body.reply, { channelType: 'telegram', channelId: CHAT, delivered: true, parts: 1 });
    const last = tg.messagesTo(CHAT).at(-1);
    assert.deepEqual([last.text, last.parse_mode], ['It is <b>4</b>.', 'HTML']);
  });

  await t.test('re-setup with another bot removes the old bot\'s webhook', async () => {
    const r = await svc.request('POST', '/api/me/telegram', { token: alice.token, body: { botToken: BOT2 } });
    assert.equal(r.status, 200);
    assert.equal(tg.webhooks.has(BOT), false);
    assert.ok(tg.webhooks.has(BOT2));
    assert.equal(r.body.config.botUsername, 'other_bot');
    // The old secret no longer opens the webhook.
    assert.equal((await deliver(alice, { text: 'old' }, { secret: 'anything' })).status, 401);
  });

  await t.test('disconnect removes the webhook and the setup, even with an unreadable token', async () => {
    const r = await svc.request('DELETE', '/api/me/telegram', { token: alice.token });
    assert.deepEqual(r.body, { success: true });
    assert.equal(tg.webhooks.has(BOT2), false);
    assert.deepEqual((await svc.request('GET', '/api/me/telegram', { token: alice.token })).body, { config: null });
    assert.equal((await svc.request('POST', '/api/me/telegram', { token: bob.token, body: { botToken: BOT } })).status, 200);
    await svc.reconfigure({ ENCRYPTION_KEY: 'Rk3Vw8Nq1Lz6Bx4Ct9Mj2Hy7Gd5Fs0Pa3Ue8Io1Tb6Q' }); // strong, unrelated
    db = await svc.db();
    const gone = await svc.request('DELETE', '/api/me/telegram', { token: bob.token });
    assert.equal(gone.status, 200);
    assert.equal((await db.prepare('SELECT COUNT(*) AS n FROM user_telegram_config').first()).n, 0);
  });

  await t.test('no bot token or secret in any response or log line', async () => {
    await sleep(50);
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
