// The Gmail integration against the fake Google (OAuth, tokens) and the fake Gmail: the OAuth
// round trip with PKCE, direct credentials, full then history-based incremental syncs with exact
// counts, an expired historyId, every action with its bad-parameter cases, the raw messages read
// back by a real MIME parser, one token refresh for 20 concurrent calls, revocation and
// reconnection, other users, and the OAuth routes without client credentials.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import PostalMime from 'postal-mime';
import { startService, knownSecrets } from '../lib/harness.mjs';
import { startFakeGoogle, GOOGLE_CLIENT_ID } from '../lib/fake-google.mjs';
import { addGmail, rawMessage } from '../lib/fake-gmail.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ME = 'alice.mail@gmail.test';
const REDIRECT = 'https://app.example.com/integrations/google/callback';
const SCOPES = ['gmail.readonly', 'gmail.send', 'gmail.compose', 'gmail.modify', 'gmail.labels'].map((s) => `https://www.googleapis.com/auth/${s}`);
const MESSAGE_KEYS = ['attachments', 'bcc', 'body', 'cc', 'date', 'from', 'id', 'labelIds', 'messageId', 'snippet', 'starred', 'subject', 'threadId', 'to', 'unread'];

test('Gmail integration', async (t) => {
  const g = await startFakeGoogle(t);
  const mail = addGmail(g);
  // Every token the fake Google issues is a secret the service must never show.
  for (const m of [g.accessTokens, g.refreshTokens]) {
    const set = m.set.bind(m);
    m.set = (k, v) => { knownSecrets.add(k); return set(k, v); };
  }
  const svc = await startService(t, { vars: g.vars() });
  const alice = await svc.createUser({ email: 'alice@example.com' });
  const bob = await svc.createUser({ email: 'bob@example.com' });
  const api = (method, path, body, user = alice) => svc.request(method, path, { token: user.token, body });
  const gmailRequests = () => g.fake.requests.filter((r) => r.path.startsWith('/gmail/') || r.path.startsWith('/batch/'));
  const outer = (list) => list.filter((r) => !r.batched);
  const count = async (id, type, extra = '') => {
    let n = 0;
    let cursor;
    do {
      const r = await api('GET', `/api/integrations/${id}/entities/${type}?limit=100${cursor ? `&cursor=${cursor}` : ''}${extra}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      n += r.body.entities.length;
      cursor = r.body.hasMore ? r.body.cursor : undefined;
    } while (cursor);
    return n;
  };
  // An entity as the integration's object stores it.
  const entity = async (id, type, externalId) => {
    const data = await svc.integrationData(id);
    const rows = (await data('entities', { entity: type, after: '', includeDeleted: true, limit: 1000 })).body.rows;
    const row = rows.find((r) => r.external_id === externalId);
    return row ? { ...JSON.parse(row.data), deleted: row.deleted_at !== null } : null;
  };
  const checkpointOf = async (id) => (await (await svc.integrationData(id))('start', { entity: 'messages' })).body.checkpoints[0];
  const waitSync = async (id, syncId, timeout = 30000) => {
    const t0 = Date.now();
    for (;;) {
      const r = await api('GET', `/api/integrations/${id}/sync/${syncId}`);
      if (['completed', 'failed'].includes(r.body.status)) return r.body;
      if (Date.now() - t0 > timeout) throw new Error(`sync stuck: ${JSON.stringify(r.body)}`);
      await sleep(50);
    }
  };
  const sync = async (id, body = {}) => {
    const r = await api('POST', `/api/integrations/${id}/sync`, body);
    assert.equal(r.status, 202, JSON.stringify(r.body));
    return waitSync(id, r.body.syncId);
  };
  const oauth = async (user, email, scopes = SCOPES) => {
    const start = await api('GET', `/api/integrations/gmail/oauth?redirect_uri=${encodeURIComponent(REDIRECT)}`, undefined, user);
    assert.equal(start.status, 200, JSON.stringify(start.body));
    const url = new URL(start.body.url);
    const code = g.issueCode({ email, challenge: url.searchParams.get('code_challenge'), redirectUri: REDIRECT, scope: scopes.join(' ') });
    return { start, url, code, callback: { code, state: start.body.state, redirect_uri: REDIRECT } };
  };

  // The mailbox: 230 messages (every fourth answers the one before it), one with a Latin-1 body,
  // one with an attachment, two in the trash and one in spam (not part of the synced mailbox), two
  // drafts, two user labels.
  let previous;
  const seeded = [];
  for (let i = 0; i < 230; i++) {
    const reply = i % 4 === 3;
    const raw = rawMessage({
      from: i % 2 ? `Sender ${i} <s${i}@example.com>` : '"Doe, Jane" <jane@example.com>', to: ME, subject: reply ? `Re: Report ${i - 1}` : `Report ${i}`,
      text: `Body of message ${i}`, inReplyTo: reply ? previous.messageId : undefined, references: reply ? previous.messageId : undefined,
      date: new Date(Date.UTC(2026, 0, 1) + i * 60000),
    });
    previous = await mail.addMessage(ME, { raw, internalDate: Date.UTC(2026, 0, 1) + i * 60000, labelIds: i % 3 ? ['INBOX'] : ['INBOX', 'UNREAD'] });
    seeded.push(previous);
  }
  const latin1 = await mail.addMessage(ME, {
    raw: ['From: =?ISO-8859-1?Q?Ren=E9?= <rene@example.fr>', `To: ${ME}`, 'Subject: =?ISO-8859-1?Q?Caf=E9?=', 'Message-ID: <latin@example.fr>', 'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=iso-8859-1', 'Content-Transfer-Encoding: quoted-printable', '', 'Caf=E9 cr=E8me br=FBl=E9e', ''].join('\r\n'),
    internalDate: Date.UTC(2026, 1, 1),
  });
  const withFile = await mail.addMessage(ME, {
    raw: ['From: Files <files@example.com>', `To: ${ME}`, 'Subject: The file', 'Message-ID: <file@example.com>', 'MIME-Version: 1.0', 'Content-Type: multipart/mixed; boundary="x1"', '',
      '--x1', 'Content-Type: text/plain; charset=UTF-8', '', 'See attached', '--x1', 'Content-Type: application/octet-stream; name="data.bin"',
      'Content-Disposition: attachment; filename="data.bin"', 'Content-Transfer-Encoding: base64', '', Buffer.from([0, 1, 2, 250, 251, 252]).toString('base64'), '--x1--', ''].join('\r\n'),
    internalDate: Date.UTC(2026, 1, 2),
  });
  for (const labels of [['TRASH'], ['TRASH', 'INBOX'], ['SPAM']]) await mail.addMessage(ME, { raw: rawMessage({ subject: 'hidden' }), labelIds: labels });
  const box = mail.box(ME);
  for (const i of [1, 2]) {
    const d = await mail.addMessage(ME, { raw: rawMessage({ from: ME, to: 'friend@example.com', subject: `Draft ${i}` }), labelIds: ['DRAFT'] });
    box.drafts.set(`r-draft-${i}`, d.id);
  }
  const workLabel = mail.userLabel(ME, 'Work');
  mail.userLabel(ME, 'Receipts');
  const visibleMessages = () => [...box.messages.values()].filter((m) => !m.labelIds.includes('TRASH') && !m.labelIds.includes('SPAM'));
  const expected = () => ({
    messages: visibleMessages().length,
    threads: new Set(visibleMessages().map((m) => m.threadId)).size,
    drafts: box.drafts.size,
    labels: 14 + box.labels.size,
  });
  let integ;

  await t.test('OAuth round trip: Google\'s parameters, PKCE, single-use state, no token in any answer', async () => {
    const avail = (await api('GET', '/api/integrations/available')).body.services.find((s) => s.service === 'gmail');
    assert.deepEqual(avail.supportedEntities, ['labels', 'messages', 'threads', 'drafts']);
    assert.equal(avail.oauth, true);
    assert.equal(avail.actions.length, 22);
    const { start, url, callback } = await oauth(alice, ME);
    assert.equal(`${url.origin}${url.pathname}`, `${g.accountsUrl}/o/oauth2/v2/auth`);
    const p = url.searchParams;
    assert.deepEqual([p.get('client_id'), p.get('redirect_uri'), p.get('response_type'), p.get('access_type'), p.get('prompt'), p.get('state'), p.get('code_challenge_method')],
      [GOOGLE_CLIENT_ID, REDIRECT, 'code', 'offline', 'consent', start.body.state, 'S256']);
    assert.deepEqual(p.get('scope').split(' ').sort(), [...SCOPES].sort());
    assert.match(p.get('code_challenge'), /^[A-Za-z0-9_-]{43}$/);
    assert.equal((await api('POST', '/api/integrations/gmail/oauth/callback', callback, bob)).body.code, 'INVALID_STATE', 'the state is bound to its user');
    const done = await api('POST', '/api/integrations/gmail/oauth/callback', callback);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    integ = done.body.integration;
    assert.deepEqual([integ.service, integ.status], ['gmail', 'active']);
    assert.deepEqual([...integ.grantedScopes].sort(), [...SCOPES].sort(), 'the scopes Google granted are recorded');
    for (const tok of [...g.accessTokens.keys(), ...g.refreshTokens.keys()]) assert.ok(!done.text.includes(tok));
    assert.equal((await api('POST', '/api/integrations/gmail/oauth/callback', callback)).body.code, 'INVALID_STATE', 'single use');
    // A code whose verifier does not match the challenge is refused by Google.
    const other = await oauth(bob, 'bob.mail@gmail.test');
    g.codes.get(other.code).challenge = 'x'.repeat(43);
    const refused = await api('POST', '/api/integrations/gmail/oauth/callback', other.callback, bob);
    assert.deepEqual([refused.status, refused.body.code], [400, 'OAUTH_EXCHANGE_FAILED']);
    const keys = await svc.apiKeys(alice.userId);
    const stored = (await keys('retrieve', { userId: alice.userId, service: `integration:${integ.id}` })).body.credentials;
    assert.ok(stored.access_token.startsWith('ya29.') && stored.refresh_token.startsWith('1//'));
    assert.match(stored.expires_at, /^\d{10}$/);
    assert.ok(!('client_secret' in stored) && !('client_id' in stored));
    const dup = await api('POST', '/api/integrations', { service: 'gmail', credentials: { access_token: stored.access_token }, config: {} });
    assert.deepEqual([dup.status, dup.body.code], [409, 'INTEGRATION_ALREADY_EXISTS']);
  });

  await t.test('direct credentials: checked with the profile, expires_at normalised, an expiring token refreshed first', async () => {
    const grant = g.grant('bob.mail@gmail.test');
    const wrong = await api('POST', '/api/integrations', { service: 'gmail', credentials: { access_token: 'ya29.wrong-token-000000' }, config: {} }, bob);
    assert.deepEqual([wrong.status, wrong.body.code], [400, 'INTEGRATION_AUTH_FAILED']);
    const badExpiry = await api('POST', '/api/integrations', { service: 'gmail', credentials: { ...grant, expires_at: 'soon' }, config: {} }, bob);
    assert.deepEqual([badExpiry.status, badExpiry.body.code], [400, 'INVALID_CREDENTIALS']);
    const missing = await api('POST', '/api/integrations', { service: 'gmail', credentials: { refresh_token: grant.refresh_token }, config: {} }, bob);
    assert.equal(missing.status, 400);
    // Expiring within five minutes (given in epoch milliseconds): refreshed before the check.
    const before = g.refreshes;
    const r = await api('POST', '/api/integrations', { service: 'gmail', credentials: { ...grant, expires_at: Date.now() + 60_000 }, config: { syncFrequency: 'manual' } }, bob);
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal(g.refreshes, before + 1);
    const keys = await svc.apiKeys(bob.userId);
    const stored = (await keys('retrieve', { userId: bob.userId, service: `integration:${r.body.integration.id}` })).body.credentials;
    assert.notEqual(stored.access_token, grant.access_token);
    assert.equal(stored.refresh_token, grant.refresh_token, 'Google sent no new refresh token: the old one is kept');
    assert.ok(Number(stored.expires_at) > Date.now() / 1000 + 3000);
    assert.equal((await api('DELETE', `/api/integrations/${r.body.integration.id}`, undefined, bob)).status, 200);
    // An ISO expiry is stored as epoch seconds.
    const iso = new Date(Date.now() + 3_000_000).toISOString();
    const r2 = await api('POST', '/api/integrations', { service: 'gmail', credentials: { access_token: grant.access_token, expires_at: iso }, config: {} }, bob);
    assert.equal(r2.status, 201, JSON.stringify(r2.body));
    const stored2 = (await keys('retrieve', { userId: bob.userId, service: `integration:${r2.body.integration.id}` })).body.credentials;
    assert.equal(stored2.expires_at, String(Math.floor(Date.parse(iso) / 1000)));
    assert.equal(r2.body.integration.grantedScopes, null, 'given without a scope: unknown, nothing is checked');
  });

  let carol;
  let carolInteg;
  const CAROL = 'carol.mail@gmail.test';
  await t.test('a consent without gmail.send: the granted scopes are shown, sends answer 403 SCOPE_MISSING before Google is called', async () => {
    carol = await svc.createUser({ email: 'carol@example.com' });
    const inbox = await mail.addMessage(CAROL, { raw: rawMessage({ to: CAROL, subject: 'For Carol' }) });
    const granted = SCOPES.filter((s) => !s.endsWith('gmail.send') && !s.endsWith('gmail.compose') && !s.endsWith('gmail.modify'));
    const { callback } = await oauth(carol, CAROL, granted);
    const done = await api('POST', '/api/integrations/gmail/oauth/callback', callback, carol);
    assert.equal(done.status, 200, JSON.stringify(done.body));
    const id = done.body.integration.id;
    carolInteg = done.body.integration;
    assert.deepEqual([...done.body.integration.grantedScopes].sort(), [...granted].sort());
    assert.deepEqual((await api('GET', `/api/integrations/${id}`, undefined, carol)).body.integration.grantedScopes.sort(), [...granted].sort());
    const before = gmailRequests().length;
    const sends = mail.sent.length;
    const refused = await api('POST', `/api/integrations/${id}/actions/send_email`, { to: 'x@example.com', subject: 'Hi', body: 'b' }, carol);
    assert.deepEqual([refused.status, refused.body.code], [403, 'SCOPE_MISSING'], JSON.stringify(refused.body));
    assert.deepEqual(refused.body.details.missing, ['https://www.googleapis.com/auth/gmail.send']);
    assert.ok(refused.body.details.anyOf[0].includes('https://mail.google.com/'));
    const draft = await api('POST', `/api/integrations/${id}/actions/create_draft`, { to: 'x@example.com', subject: 'Hi' }, carol);
    assert.deepEqual([draft.status, draft.body.details.missing], [403, ['https://www.googleapis.com/auth/gmail.compose']]);
    const star = await api('POST', `/api/integrations/${id}/actions/star`, { id: inbox.id }, carol);
    assert.deepEqual([star.status, star.body.details.missing], [403, ['https://www.googleapis.com/auth/gmail.modify']]);
    const pushed = await api('POST', `/api/integrations/${id}/push`, { entityType: 'messages', data: { to: 'x@example.com', subject: 'Hi' } }, carol);
    assert.deepEqual([pushed.status, pushed.body.code], [403, 'SCOPE_MISSING']);
    assert.equal(gmailRequests().length, before, 'Google was not called');
    assert.equal(mail.sent.length, sends);
    // What the consent allows still works, and the integration stays active.
    const read = await api('POST', `/api/integrations/${id}/actions/get_message`, { id: inbox.id }, carol);
    assert.deepEqual([read.status, read.body.result.subject], [200, 'For Carol']);
    assert.equal((await api('GET', `/api/integrations/${id}`, undefined, carol)).body.integration.status, 'active');
  });

  await t.test('a full sync stores every entity with exact counts, messages read 50 per batch', async () => {
    const before = gmailRequests().length;
    const sizesBefore = (g.batchSizes ?? []).length;
    const done = await sync(integ.id, { fullSync: true });
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const want = expected();
    assert.equal(want.messages, 230 + 2 + 2);
    for (const type of ['messages', 'threads', 'drafts', 'labels']) assert.equal(await count(integ.id, type), want[type], type);
    assert.equal(done.progress, want.messages + want.threads + want.drafts + want.labels);
    const seen = gmailRequests().slice(before);
    const batches = outer(seen).filter((r) => r.path === '/batch/gmail/v1');
    assert.equal(batches.length, Math.ceil(want.messages / 50) + Math.ceil(want.threads / 50), 'one batch per 50 messages, and per 50 threads (their headers)');
    assert.ok(g.batchSizes.slice(sizesBefore).every((n) => n <= 50), `batches of at most 50 parts: ${g.batchSizes.slice(sizesBefore)}`);
    assert.equal(outer(seen).filter((r) => /\/messages\/[^/]+$/.test(r.path)).length, 0, 'no message read one by one');
    assert.equal(seen.filter((r) => r.batched && r.path.includes('/messages/')).length, want.messages);
    assert.equal(seen.filter((r) => r.batched && r.path.includes('/threads/')).length, want.threads);
    const m = await entity(integ.id, 'messages', latin1.id);
    assert.deepEqual(Object.keys(m).filter((k) => k !== 'deleted').sort(), MESSAGE_KEYS);
    assert.deepEqual([m.subject, m.body.trim(), m.from, m.to, m.date], ['Café', 'Café crème brûlée', 'René <rene@example.fr>', [ME], '2026-02-01T00:00:00.000Z']);
    const jane = await entity(integ.id, 'messages', seeded[0].id);
    assert.deepEqual([jane.from, jane.unread, jane.starred, jane.messageId], ['Doe, Jane <jane@example.com>', true, false, seeded[0].messageId]);
    // A thread keeps its subject, who wrote and who was on it, and its last date: searchable.
    const thread = await entity(integ.id, 'threads', seeded[3].threadId);
    assert.deepEqual(
      [thread.subject, thread.from, thread.participants, thread.date, thread.messageCount],
      ['Report 2', 'Doe, Jane <jane@example.com>, Sender 3 <s3@example.com>', ['Doe, Jane <jane@example.com>', ME, 'Sender 3 <s3@example.com>'], new Date(seeded[3].internalDate).toISOString(), 2],
    );
    const found = await api('GET', `/api/integrations/${integ.id}/search?${new URLSearchParams({ q: 'Report 2', type: 'threads' })}`);
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.deepEqual(found.body.results.map((r) => [r.externalId, r.title])[0], [seeded[3].threadId, 'Report 2']);
    const bySender = await api('GET', `/api/integrations/${integ.id}/search?${new URLSearchParams({ q: 's3@example.com', type: 'threads' })}`);
    assert.ok(bySender.body.results.some((r) => r.externalId === seeded[3].threadId), JSON.stringify(bySender.body));
    assert.deepEqual((await entity(integ.id, 'drafts', 'r-draft-1')), { id: 'r-draft-1', messageId: box.drafts.get('r-draft-1'), threadId: box.messages.get(box.drafts.get('r-draft-1')).threadId, deleted: false });
    assert.equal((await entity(integ.id, 'labels', workLabel)).name, 'Work');
    const checkpoint = await checkpointOf(integ.id);
    assert.equal(Number(checkpoint.cursor), Math.max(...visibleMessages().map((m) => m.historyId)));
  });

  await t.test('an incremental sync reads the history and fetches only what changed', async () => {
    const starred = seeded[10];
    const removed = seeded[20];
    const binned = seeded[30];
    mail.relabel(ME, starred.id, { add: ['STARRED'], remove: ['UNREAD'] });
    mail.deleteMessage(ME, removed.id);
    mail.relabel(ME, binned.id, { add: ['TRASH'] });
    const fresh = await mail.addMessage(ME, { raw: rawMessage({ subject: 'Brand new', text: 'New today' }) });
    const before = gmailRequests().length;
    const done = await sync(integ.id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.equal(done.fullSync, false);
    const seen = gmailRequests().slice(before);
    const history = seen.filter((r) => r.path === '/gmail/v1/users/me/history');
    assert.equal(history.length, 1);
    assert.equal(Number(history[0].query.get('startHistoryId')), fresh.historyId - 4);
    assert.ok(!seen.some((r) => r.path === '/gmail/v1/users/me/messages'), 'no full listing');
    assert.deepEqual(seen.filter((r) => r.batched && r.path.includes('/messages/')).map((r) => r.path.split('/').pop()).sort(), [starred.id, binned.id, fresh.id].sort());
    // Threads (a full, sweeping pass each run): one listing, their headers 50 per batch.
    assert.ok(outer(seen).length <= 5 + Math.ceil(expected().threads / 50), `few requests: ${outer(seen).map((r) => r.path)}`);
    assert.equal(await count(integ.id, 'messages', '&includeDeleted=false'), expected().messages);
    assert.equal((await entity(integ.id, 'messages', starred.id)).starred, true);
    assert.equal((await entity(integ.id, 'messages', starred.id)).unread, false);
    assert.equal((await entity(integ.id, 'messages', removed.id)).deleted, true);
    assert.equal((await entity(integ.id, 'messages', binned.id)).deleted, true);
    assert.equal((await entity(integ.id, 'messages', fresh.id)).subject, 'Brand new');
    assert.equal(await count(integ.id, 'threads', '&includeDeleted=false'), expected().threads);
  });

  await t.test('a historyId Gmail no longer knows: a full run, with the reason in the run\'s notes', async () => {
    mail.expireHistory(ME);
    const last = await checkpointOf(integ.id);
    const gone = seeded[40];
    mail.deleteMessage(ME, gone.id);
    const before = gmailRequests().length;
    const done = await sync(integ.id);
    assert.equal(done.status, 'completed', JSON.stringify(done));
    assert.deepEqual(done.notes, [`messages: Gmail no longer has history from ${last.cursor}; starting a full pass`]);
    const seen = outer(gmailRequests().slice(before));
    assert.equal(seen.filter((r) => r.path === '/gmail/v1/users/me/history').length, 1);
    assert.ok(seen.some((r) => r.path === '/gmail/v1/users/me/messages'), 'listed in full');
    assert.equal(await count(integ.id, 'messages', '&includeDeleted=false'), expected().messages);
    assert.equal((await entity(integ.id, 'messages', gone.id)).deleted, true, 'the full pass swept what is gone');
  });

  await t.test('filters.labels and filters.after: only those messages (and threads) are synced, in full and incrementally; bad filters are 400', async () => {
    const dave = await svc.createUser({ email: 'dave@example.com' });
    const DAVE = 'dave.mail@gmail.test';
    const at = (d) => ({ raw: rawMessage({ to: DAVE, subject: `On ${d}`, date: new Date(d) }), internalDate: Date.parse(d) });
    const old = await mail.addMessage(DAVE, { ...at('2025-12-01T10:00:00Z'), labelIds: ['INBOX', 'STARRED'] });
    const recent = await mail.addMessage(DAVE, { ...at('2026-02-01T10:00:00Z'), labelIds: ['INBOX', 'STARRED'] });
    const plain = await mail.addMessage(DAVE, { ...at('2026-02-02T10:00:00Z'), labelIds: ['INBOX'] });
    const { callback } = await oauth(dave, DAVE);
    const id = (await api('POST', '/api/integrations/gmail/oauth/callback', callback, dave)).body.integration.id;
    const patch = (filters) => api('PATCH', `/api/integrations/${id}`, { config: { syncFrequency: 'manual', filters } }, dave);
    for (const [filters, field] of [[{ repositories: ['a/b'] }, 'repositories'], [{ labels: 'STARRED' }, 'labels'], [{ after: 'yesterday' }, 'after'], [{ after: '2026-02-30' }, 'after']]) {
      const r = await patch(filters);
      assert.deepEqual([r.status, r.body.code, r.body.details[0].field], [400, 'VALIDATION_ERROR', `config.filters.${field}`], JSON.stringify(filters));
    }
    assert.equal((await patch({ labels: ['STARRED'], after: '2026-01-01' })).status, 200);
    const before = gmailRequests().length;
    const r = await api('POST', `/api/integrations/${id}/sync`, { fullSync: true }, dave);
    let done;
    for (let i = 0; i < 400 && !['completed', 'failed'].includes(done?.status); i++) {
      done = (await api('GET', `/api/integrations/${id}/sync/${r.body.syncId}`, undefined, dave)).body;
      if (!['completed', 'failed'].includes(done.status)) await sleep(50);
    }
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const list = outer(gmailRequests().slice(before)).find((q) => q.path === '/gmail/v1/users/me/messages');
    assert.deepEqual([list.query.getAll('labelIds'), list.query.get('q')], [['STARRED'], 'after:2026/01/01']);
    const threads = outer(gmailRequests().slice(before)).find((q) => q.path === '/gmail/v1/users/me/threads');
    assert.deepEqual([threads.query.getAll('labelIds'), threads.query.get('q')], [['STARRED'], 'after:2026/01/01']);
    const live = async () => {
      const rows = (await (await svc.integrationData(id))('entities', { entity: 'messages', after: '', includeDeleted: false, limit: 100 })).body.rows;
      return rows.map((x) => x.external_id).sort();
    };
    assert.deepEqual(await live(), [recent.id]);
    // Incremental: a message that loses the label leaves, a new starred one comes, an old one starred stays out.
    mail.relabel(DAVE, recent.id, { remove: ['STARRED'] });
    mail.relabel(DAVE, plain.id, { add: ['STARRED'] });
    mail.relabel(DAVE, old.id, { add: ['IMPORTANT'] });
    const inc = await api('POST', `/api/integrations/${id}/sync`, {}, dave);
    for (let i = 0, s; i < 400 && !['completed', 'failed'].includes(s?.status); i++) {
      s = (await api('GET', `/api/integrations/${id}/sync/${inc.body.syncId}`, undefined, dave)).body;
      if (['completed', 'failed'].includes(s.status)) assert.equal(s.status, 'completed', JSON.stringify(s));
      else await sleep(50);
    }
    assert.deepEqual(await live(), [plain.id]);
  });

  const act = (name, params, user = alice, id = integ.id) => api('POST', `/api/integrations/${id}/actions/${name}`, params, user);

  await t.test('actions are listed with their JSON Schemas', async () => {
    const r = await api('GET', `/api/integrations/${integ.id}/actions`);
    assert.deepEqual(r.body.actions.map((a) => a.name), ['search_messages', 'get_message', 'get_thread', 'send_email', 'reply', 'create_draft', 'update_draft', 'send_draft', 'delete_draft', 'list_drafts',
      'modify_labels', 'mark_read', 'mark_unread', 'archive', 'star', 'unstar', 'trash', 'untrash', 'list_labels', 'create_label', 'delete_label', 'get_attachment']);
    const send = r.body.actions.find((a) => a.name === 'send_email').params;
    assert.deepEqual([send.type, send.required, send.additionalProperties], ['object', ['to', 'subject'], false]);
    assert.deepEqual(send.properties.to.anyOf.map((x) => x.type), ['string', 'array']);
    assert.equal(r.body.actions.find((a) => a.name === 'search_messages').params.properties.maxResults.maximum, 100);
  });

  await t.test('reading: search (one list and one batch), get_message, get_thread, get_attachment', async () => {
    const before = gmailRequests().length;
    const found = await act('search_messages', { query: 'subject:Report', maxResults: 5 });
    assert.equal(found.status, 200, JSON.stringify(found.body));
    assert.equal(found.body.result.messages.length, 5);
    assert.ok(found.body.result.nextPageToken);
    assert.deepEqual(Object.keys(found.body.result.messages[0]).sort(), MESSAGE_KEYS);
    assert.ok(found.body.result.messages.every((m) => m.subject.includes('Report')));
    assert.equal(outer(gmailRequests().slice(before)).length, 2, 'a list and one batch');
    const page2 = await act('search_messages', { query: 'subject:Report', maxResults: 5, pageToken: found.body.result.nextPageToken });
    assert.notDeepEqual(page2.body.result.messages.map((m) => m.id), found.body.result.messages.map((m) => m.id));
    const unread = await act('search_messages', { labelIds: ['UNREAD'], maxResults: 100 });
    assert.ok(unread.body.result.messages.every((m) => m.unread));
    const none = await act('search_messages', { query: 'subject:"no such thing"' });
    assert.deepEqual(none.body.result, { messages: [] });

    const one = await act('get_message', { id: latin1.id });
    assert.deepEqual([one.body.result.subject, one.body.result.body.trim()], ['Café', 'Café crème brûlée']);
    const thread = await act('get_thread', { id: seeded[3].threadId });
    assert.equal(thread.status, 200);
    assert.deepEqual(Object.keys(thread.body.result).sort(), ['id', 'messages']);
    assert.deepEqual(thread.body.result.messages.map((m) => m.id), [seeded[2].id, seeded[3].id]);
    const att = (await act('get_message', { id: withFile.id })).body.result.attachments[0];
    assert.deepEqual([att.filename, att.mimeType, att.size], ['data.bin', 'application/octet-stream', 6]);
    const file = await act('get_attachment', { messageId: withFile.id, attachmentId: att.id });
    assert.deepEqual(file.body.result, { size: 6, data: Buffer.from([0, 1, 2, 250, 251, 252]).toString('base64') });
    assert.equal((await act('get_message', { id: 'ffffffffffff' })).status, 404);
    // The generic fetch route reads any Gmail entity live.
    const fetched = await api('POST', `/api/integrations/${integ.id}/fetch`, { entityType: 'messages', externalId: latin1.id });
    assert.deepEqual([fetched.status, fetched.body.entity.id, fetched.body.entity.subject], [200, latin1.id, 'Café']);
    const label = await api('POST', `/api/integrations/${integ.id}/fetch`, { entityType: 'labels', externalId: workLabel });
    assert.equal(label.body.entity.name, 'Work');
    const th = await api('POST', `/api/integrations/${integ.id}/fetch`, { entityType: 'threads', externalId: seeded[3].threadId });
    assert.deepEqual(Object.keys(th.body.entity).sort(), ['date', 'from', 'historyId', 'id', 'messageCount', 'participants', 'snippet', 'subject']);
    assert.deepEqual([th.body.entity.subject, th.body.entity.messageCount], ['Report 2', 2]);
    assert.equal((await api('POST', `/api/integrations/${integ.id}/fetch`, { entityType: 'drafts', externalId: 'r-draft-1' })).body.entity.messageId, box.drafts.get('r-draft-1'));
    assert.equal((await api('POST', `/api/integrations/${integ.id}/fetch`, { entityType: 'messages', externalId: 'nope' })).status, 404);
  });

  await t.test('timeouts fit the work: a batch answered after 9 s (past the old 8 s) succeeds; 100 results in batches of 50', async () => {
    const sizesBefore = (g.batchSizes ?? []).length;
    g.fake.fault('/batch/gmail/v1', { delayMs: 9000 });
    const slow = await act('search_messages', { maxResults: 100 });
    assert.equal(slow.status, 200, JSON.stringify(slow.body));
    assert.equal(slow.body.result.messages.length, 100);
    assert.deepEqual(g.batchSizes.slice(sizesBefore), [50, 50]);
  });

  let sent;
  await t.test('send_email: an RFC 5322 message a real parser reads back exactly', async () => {
    const pdf = Buffer.from('%PDF-1.4\n% ünïcödé\n');
    const r = await act('send_email', {
      to: ['"Doe, Jane" <jane@example.com>', 'Jürgen Groß <juergen@example.de>'], cc: 'team@example.com', bcc: 'secret@example.net',
      subject: 'Grüße — Quartalsbericht 📈', body: `Hallo Jürgen,\n\nsiehe Anhang.\n${'x'.repeat(1500)}`, bodyHtml: '<p>Hallo <b>Jürgen</b></p>',
      replyTo: 'Desk <desk@example.com>', attachments: [{ filename: 'Bericht für März.pdf', mimeType: 'application/pdf', data: pdf.toString('base64') }],
    });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(Object.keys(r.body.result).sort(), ['id', 'threadId']);
    sent = mail.sent.at(-1);
    assert.equal(sent.via, 'send');
    const raw = sent.raw;
    assert.ok(raw.split('\r\n').every((l) => Buffer.byteLength(l) <= 998), 'no line over 998 octets');
    assert.ok(/^[\x00-\x7f]*$/.test(raw), '7-bit on the wire');
    const e = await PostalMime.parse(raw);
    assert.equal(e.subject, 'Grüße — Quartalsbericht 📈');
    assert.deepEqual(e.from, { address: ME, name: '' });
    assert.deepEqual(e.to, [{ address: 'jane@example.com', name: 'Doe, Jane' }, { address: 'juergen@example.de', name: 'Jürgen Groß' }]);
    assert.deepEqual(e.cc.map((a) => a.address), ['team@example.com']);
    assert.deepEqual(e.bcc?.map((a) => a.address), ['secret@example.net'], 'Bcc is in the raw message (Gmail delivers and strips it)');
    assert.deepEqual(e.replyTo.map((a) => a.address), ['desk@example.com']);
    assert.match(e.messageId, new RegExp(`^<[0-9a-f]{32}@${ME.split('@')[1].replace('.', '\\.')}>$`));
    assert.ok(Math.abs(Date.parse(e.date) - Date.now()) < 60_000);
    assert.equal(e.text.replace(/\r\n/g, '\n').trim(), `Hallo Jürgen,\n\nsiehe Anhang.\n${'x'.repeat(1500)}`);
    assert.equal(e.html.trim(), '<p>Hallo <b>Jürgen</b></p>');
    assert.equal(e.attachments.length, 1);
    assert.equal(e.attachments[0].filename, 'Bericht für März.pdf');
    assert.deepEqual(Buffer.from(e.attachments[0].content), pdf);
    assert.match(raw, /^MIME-Version: 1\.0\r$/m);
    assert.match(raw, /boundary="=_[a-z][0-9a-f]{32}"/);
    const stored = await entity(integ.id, 'messages', r.body.result.id);
    assert.deepEqual([stored.subject, stored.labelIds], ['Grüße — Quartalsbericht 📈', ['SENT']]);
    // The legacy push route sends through the same action.
    const pushed = await api('POST', `/api/integrations/${integ.id}/push`, { entityType: 'messages', data: { to: 'x@example.com', subject: 'Pushed', body: 'via push' } });
    assert.deepEqual([pushed.status, Object.keys(pushed.body.result).sort()], [201, ['id', 'threadId']]);
    assert.equal((await PostalMime.parse(mail.sent.at(-1).raw)).subject, 'Pushed');
  });

  await t.test('reply: same thread, Re: once, In-Reply-To and References; replyAll without the account', async () => {
    const original = await mail.addMessage(ME, {
      raw: rawMessage({ from: '"Müller, Jörg" <joerg@example.de>', to: `Alice <${ME}>, carol@example.com`, cc: 'dave@example.com, joerg@example.de', subject: 'Re: Planung',
        messageId: '<orig-42@mail.example.de>', references: '<root-1@mail.example.de>' }),
    });
    const r = await act('reply', { messageId: original.id, body: 'Passt.', bodyHtml: '<p>Passt.</p>', replyAll: true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.result.threadId, original.threadId);
    const out = mail.sent.at(-1);
    assert.equal(out.threadId, original.threadId);
    const e = await PostalMime.parse(out.raw);
    assert.equal(e.subject, 'Re: Planung');
    assert.equal(e.inReplyTo, '<orig-42@mail.example.de>');
    assert.equal(e.references, '<root-1@mail.example.de> <orig-42@mail.example.de>');
    assert.deepEqual(e.to, [{ address: 'joerg@example.de', name: 'Müller, Jörg' }]);
    assert.deepEqual(e.cc.map((a) => a.address), ['carol@example.com', 'dave@example.com']);
    const plain = await act('reply', { messageId: seeded[0].id, body: 'Thanks' });
    const p = await PostalMime.parse(mail.sent.at(-1).raw);
    assert.deepEqual([p.subject, p.to.map((a) => a.address), p.cc], ['Re: Report 0', ['jane@example.com'], undefined]);
    assert.equal(plain.body.result.threadId, seeded[0].threadId);
  });

  await t.test('drafts: create (in a thread), list, update keeping what is not given, send, delete', async () => {
    const created = await act('create_draft', { to: 'friend@example.com', subject: 'Re: Report 0', body: 'Draft text', threadId: seeded[0].threadId,
      attachments: [{ filename: 'a.txt', mimeType: 'text/plain', data: Buffer.from('keep me').toString('base64') }] });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.deepEqual(Object.keys(created.body.result).sort(), ['draftId', 'messageId']);
    const { draftId } = created.body.result;
    assert.equal(box.drafts.get(draftId), created.body.result.messageId);
    const draftMsg = box.messages.get(created.body.result.messageId);
    assert.equal(draftMsg.threadId, seeded[0].threadId);
    // It answers the thread's last message (the reply sent above).
    const last = [...box.messages.values()].filter((m) => m.threadId === seeded[0].threadId && !m.labelIds.includes('DRAFT')).sort((a, b) => a.internalDate - b.internalDate).at(-1);
    assert.notEqual(last.id, seeded[0].id);
    assert.equal((await PostalMime.parse(draftMsg.raw)).inReplyTo, last.messageId);
    const listed = await act('list_drafts', {});
    assert.equal(listed.status, 200);
    const mine = listed.body.result.drafts.find((d) => d.draftId === draftId);
    assert.deepEqual([mine.id, mine.messageId, mine.message.subject], [draftId, created.body.result.messageId, 'Re: Report 0']);
    assert.equal(listed.body.result.drafts.length, 3);
    const updated = await act('update_draft', { draftId, subject: 'Re: Report 0 (v2)' });
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
    assert.equal(updated.body.result.draftId, draftId);
    const v2 = await PostalMime.parse(box.messages.get(box.drafts.get(draftId)).raw);
    assert.deepEqual([v2.subject, v2.to[0].address, v2.text.trim(), v2.inReplyTo], ['Re: Report 0 (v2)', 'friend@example.com', 'Draft text', last.messageId]);
    assert.equal(Buffer.from(v2.attachments[0].content).toString(), 'keep me', 'the attachment survives the update');
    const sentDraft = await act('send_draft', { draftId });
    assert.equal(sentDraft.status, 200);
    assert.deepEqual(Object.keys(sentDraft.body.result).sort(), ['id', 'threadId']);
    assert.equal(mail.sent.at(-1).via, 'draft');
    assert.equal((await entity(integ.id, 'drafts', draftId)).deleted, true);
    assert.equal((await act('send_draft', { draftId })).status, 404);
    const deleted = await act('delete_draft', { draftId: 'r-draft-2' });
    assert.deepEqual(deleted.body.result, { deleted: true });
    assert.equal(box.drafts.has('r-draft-2'), false);
    assert.equal((await entity(integ.id, 'drafts', 'r-draft-2')).deleted, true);
  });

  await t.test('labels and message state: each action answers the message as it now is', async () => {
    const id = seeded[5].id;
    const expectFlags = async (name, check) => {
      const r = await act(name, { id });
      assert.equal(r.status, 200, `${name}: ${JSON.stringify(r.body)}`);
      check(r.body.result);
      return r.body.result;
    };
    await expectFlags('mark_unread', (m) => assert.equal(m.unread, true));
    await expectFlags('mark_read', (m) => assert.equal(m.unread, false));
    await expectFlags('star', (m) => assert.equal(m.starred, true));
    await expectFlags('unstar', (m) => assert.equal(m.starred, false));
    await expectFlags('archive', (m) => assert.ok(!m.labelIds.includes('INBOX')));
    await expectFlags('trash', (m) => assert.ok(m.labelIds.includes('TRASH')));
    assert.equal((await entity(integ.id, 'messages', id)).deleted, true, 'trash is not part of the synced mailbox');
    await expectFlags('untrash', (m) => assert.ok(!m.labelIds.includes('TRASH')));
    assert.equal((await entity(integ.id, 'messages', id)).deleted, false);
    const mod = await act('modify_labels', { id, add: ['work', 'INBOX'], remove: ['UNREAD'] });
    assert.equal(mod.status, 200, JSON.stringify(mod.body));
    assert.deepEqual(mod.body.result.labelIds.filter((l) => l !== 'UNREAD').sort(), ['INBOX', workLabel].sort());
    const labels = await act('list_labels', {});
    assert.ok(labels.body.result.labels.some((l) => l.id === workLabel && l.name === 'Work'));
    const created = await act('create_label', { name: 'Projekte/Ü' });
    assert.equal(created.status, 200, JSON.stringify(created.body));
    assert.deepEqual([created.body.result.name, created.body.result.type], ['Projekte/Ü', 'user']);
    const dup = await act('create_label', { name: 'projekte/ü' });
    assert.deepEqual([dup.status, dup.body.code], [409, 'LABEL_EXISTS']);
    assert.equal((await entity(integ.id, 'labels', created.body.result.id)).name, 'Projekte/Ü');
    assert.deepEqual((await act('delete_label', { id: created.body.result.id })).body.result, { deleted: true });
    assert.equal((await entity(integ.id, 'labels', created.body.result.id)).deleted, true);
    assert.equal((await act('delete_label', { id: created.body.result.id })).status, 404);
    const system = await act('delete_label', { id: 'INBOX' });
    assert.deepEqual([system.status, system.body.code], [400, 'VALIDATION_ERROR']);
  });

  await t.test('bad parameters: 400 VALIDATION_ERROR with the fields, nothing sent to Gmail', async () => {
    const before = gmailRequests().length;
    const fields = async (name, params) => {
      const r = await act(name, params);
      assert.deepEqual([r.status, r.body.code], [400, 'VALIDATION_ERROR'], `${name} ${JSON.stringify(params)}: ${JSON.stringify(r.body)}`);
      assert.ok(Array.isArray(r.body.details), JSON.stringify(r.body));
      return r.body.details.map((d) => d.field).sort();
    };
    assert.deepEqual(await fields('send_email', {}), ['subject', 'to']);
    assert.deepEqual(await fields('send_email', { to: 42, subject: 'x', colour: 'red' }), ['colour', 'to']);
    assert.deepEqual(await fields('send_email', { to: [], subject: 'x' }), ['to']);
    assert.deepEqual(await fields('send_email', { to: 'x@y.com', subject: 'x', attachments: [{ filename: 'a.bin', mimeType: 'application/octet-stream', data: 'not base64!' }] }), ['attachments.0.data']);
    assert.deepEqual(await fields('search_messages', { maxResults: 500 }), ['maxResults']);
    assert.deepEqual(await fields('get_message', {}), ['id']);
    assert.deepEqual(await fields('reply', { messageId: seeded[0].id, cc: 'a@b.com' }), ['cc']);
    assert.deepEqual(await fields('get_attachment', { messageId: 'x' }), ['attachmentId']);
    assert.deepEqual(await fields('create_label', { name: '' }), ['name']);
    assert.deepEqual(await fields('modify_labels', { id: 'x', add: 'INBOX' }), ['add']);
    assert.equal(gmailRequests().length, before, 'schema failures never reach Gmail');
    // Beyond the schema: addresses and label names are checked by the service.
    assert.deepEqual(await fields('send_email', { to: 'not an address', subject: 'x' }), ['to']);
    assert.deepEqual(await fields('send_email', { to: ['ok@example.com', 'nope'], subject: 'x' }), ['to.1']);
    assert.deepEqual(await fields('create_draft', { to: 'ok@example.com', subject: 'x', replyTo: ['a@x.com', 'b@x.com'] }), ['replyTo']);
    assert.deepEqual(await fields('modify_labels', { id: seeded[1].id, add: ['No such label'] }), ['add.0']);
    assert.equal(outer(gmailRequests().slice(before)).filter((r) => r.path.endsWith('/send')).length, 0);
  });

  await t.test('upstream failures: rate limits with Retry-After, 5xx with the status', async () => {
    g.fake.fault(/\/messages\/[^/]+$/, { status: 429, headers: { 'retry-after': '9' }, json: { error: { code: 429, message: 'Too many concurrent requests for user' } } });
    const limited = await act('get_message', { id: seeded[1].id });
    assert.deepEqual([limited.status, limited.body.code, limited.headers.get('retry-after')], [429, 'RATE_LIMITED', '9']);
    g.fake.fault(/\/messages\/[^/]+$/, { status: 503, json: { error: { code: 503, message: 'Backend Error' } } });
    const down = await act('get_message', { id: seeded[1].id });
    assert.deepEqual([down.status, down.body.code, down.body.details.status], [502, 'UPSTREAM_ERROR', 503]);
    assert.equal((await api('GET', `/api/integrations/${integ.id}`)).body.integration.status, 'active');
  });

  await t.test('an expired token and 20 concurrent actions: exactly one refresh at Google', async () => {
    g.refreshDelayMs = 300;
    const before = g.refreshes;
    g.expire(ME);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => act(i % 2 ? 'get_message' : 'search_messages', i % 2 ? { id: seeded[i].id } : { maxResults: 2 })));
    g.refreshDelayMs = 0;
    assert.deepEqual(results.map((r) => r.status), Array(20).fill(200), JSON.stringify(results.find((r) => r.status !== 200)?.body));
    assert.equal(g.refreshes - before, 1);
    // The refreshed token was persisted: the next call needs no refresh.
    assert.equal((await act('get_message', { id: seeded[1].id })).status, 200);
    assert.equal(g.refreshes - before, 1);
  });

  await t.test('revoked access: RECONNECT_REQUIRED, the integration in error, back to active after reconnecting', async () => {
    g.revoke(ME);
    const r = await act('get_message', { id: seeded[1].id });
    assert.deepEqual([r.status, r.body.code], [409, 'RECONNECT_REQUIRED']);
    let i = (await api('GET', `/api/integrations/${integ.id}`)).body.integration;
    assert.deepEqual([i.status, i.errorMessage], ['error', 'Google access was revoked or expired; reconnect the account']);
    const again = await act('list_labels', {});
    assert.deepEqual([again.status, again.body.code, again.body.error], [409, 'RECONNECT_REQUIRED', 'Google access was revoked or expired; reconnect the account']);
    assert.equal((await api('POST', `/api/integrations/${integ.id}/sync`, {})).body.code, 'INTEGRATION_NOT_ACTIVE');
    const stillRevoked = await api('PATCH', `/api/integrations/${integ.id}`, { status: 'active' });
    assert.deepEqual([stillRevoked.status, stillRevoked.body.code], [400, 'INTEGRATION_AUTH_FAILED']);
    // Google works again for this refresh token: reactivation refreshes the stored credentials.
    for (const rt of g.refreshTokens.values()) if (rt.email === ME) rt.revoked = false;
    i = (await api('PATCH', `/api/integrations/${integ.id}`, { status: 'active' })).body.integration;
    assert.deepEqual([i.status, i.errorMessage], ['active', null]);
    assert.equal((await act('get_message', { id: seeded[1].id })).status, 200);
    // Revoked again; a new OAuth round trip reconnects the same integration.
    g.revoke(ME);
    assert.equal((await act('get_message', { id: seeded[1].id })).status, 409);
    const { callback } = await oauth(alice, ME);
    const back = await api('POST', '/api/integrations/gmail/oauth/callback', callback);
    assert.equal(back.status, 200, JSON.stringify(back.body));
    assert.deepEqual([back.body.integration.id, back.body.integration.status, back.body.integration.errorMessage], [integ.id, 'active', null]);
    assert.equal((await act('get_message', { id: seeded[1].id })).status, 200);
  });

  await t.test('other users see nothing of it', async () => {
    for (const [method, path, body] of [
      ['GET', `/api/integrations/${integ.id}`], ['GET', `/api/integrations/${integ.id}/actions`], ['POST', `/api/integrations/${integ.id}/actions/get_message`, { id: seeded[1].id }],
      ['POST', `/api/integrations/${integ.id}/sync`, {}], ['GET', `/api/integrations/${integ.id}/entities/messages`], ['DELETE', `/api/integrations/${integ.id}`],
    ]) {
      assert.equal((await api(method, path, body, bob)).status, 404, `${method} ${path}`);
    }
  });

  await t.test('OAuth routes without Google client credentials: 503 OAUTH_NOT_CONFIGURED', async () => {
    const pending = await oauth(alice, ME);
    await svc.reconfigure({ GOOGLE_CLIENT_SECRET: undefined });
    const cb = await api('POST', '/api/integrations/gmail/oauth/callback', pending.callback);
    assert.deepEqual([cb.status, cb.body.code], [503, 'OAUTH_NOT_CONFIGURED']);
    await svc.reconfigure({ GOOGLE_CLIENT_ID: undefined });
    const start = await api('GET', `/api/integrations/gmail/oauth?redirect_uri=${encodeURIComponent(REDIRECT)}`);
    assert.deepEqual([start.status, start.body.code], [503, 'OAUTH_NOT_CONFIGURED']);
    await svc.reconfigure({});
    assert.equal((await api('GET', `/api/integrations/gmail/oauth?redirect_uri=${encodeURIComponent(REDIRECT)}`)).status, 200);
  });

  await t.test('deleting an integration revokes the Google grant it obtained; not a token given directly; a provider that is down does not block it and is retried', async () => {
    const keys = async (user, id) => (await (await svc.apiKeys(user.userId))('retrieve', { userId: user.userId, service: `integration:${id}` })).body.credentials;
    const revokeCalls = () => g.fake.requests.filter((r) => r.path === '/revoke').length;
    const waitFor = async (check, what, tries = 200) => {
      for (let i = 0; i < tries && !check(); i++) await sleep(25);
      assert.ok(check(), what);
    };
    // Bob's integration was connected with credentials given directly: nothing goes to Google.
    const bobs = (await api('GET', '/api/integrations', undefined, bob)).body.integrations.filter((i) => i.service === 'gmail');
    assert.equal(bobs.length, 1);
    const before = revokeCalls();
    assert.deepEqual((await api('DELETE', `/api/integrations/${bobs[0].id}`, undefined, bob)).body, { success: true });
    // Carol's came through the OAuth round trip: her grant is revoked (the refresh token, which takes the grant with it).
    const { refresh_token: refresh } = await keys(carol, carolInteg.id);
    assert.deepEqual((await api('DELETE', `/api/integrations/${carolInteg.id}`, undefined, carol)).body, { success: true });
    await waitFor(() => g.revocations.some((r) => r.token === refresh), 'carol\'s grant revoked');
    assert.deepEqual(g.revocations.filter((r) => r.token === refresh), [{ token: refresh, known: true }]);
    assert.equal(g.refreshTokens.get(refresh).revoked, true);
    assert.equal(revokeCalls(), before + 1, 'bob\'s token given directly was not revoked');
    // Google is down: the deletion happens all the same, and the failure is logged without the token.
    const { refresh_token: aliceRefresh } = await keys(alice, integ.id);
    g.fake.fault('/revoke', { status: 503, json: { error: 'backend_error' } });
    const deleted = await api('DELETE', `/api/integrations/${integ.id}`);
    assert.deepEqual([deleted.status, deleted.body], [200, { success: true }]);
    assert.equal((await api('GET', `/api/integrations/${integ.id}`)).status, 404);
    await waitFor(() => revokeCalls() === before + 2, 'the revocation was attempted');
    await waitFor(() => svc.logs.join('').includes(`integration ${integ.id}: its Google grant was not revoked (Google answered 503); retried`), 'the failure is logged');
    // The revocation is an outbox row: the queue retries it until Google answers.
    await waitFor(() => g.revocations.some((r) => r.token === aliceRefresh), 'revoked once Google is back', 600);
    assert.equal(g.refreshTokens.get(aliceRefresh).revoked, true);
    assert.ok(!svc.logs.join('').includes(aliceRefresh));
  });

  await t.test('no secret in any response or log line', () => {
    assert.ok(knownSecrets.size > 10);
    assert.deepEqual(svc.leakedSecrets(), []);
  });
});
