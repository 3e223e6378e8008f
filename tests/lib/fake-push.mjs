// Push on the fakes (contract §16), speaking Google's and GitHub's real paths and shapes:
//
// - Gmail `users.watch` / `users.stop` (`POST /gmail/v1/users/me/watch|stop`: a watch per
//   mailbox on a Pub/Sub topic, 7 days) and a Pub/Sub push subscription: every change recorded
//   in a watched mailbox is published to `ps.endpoint` as Pub/Sub's push body
//   (`{message: {data: base64 {emailAddress, historyId}, messageId, publishTime}, subscription}`)
//   with an OIDC token signed by an RSA key made here (node:crypto) and published as a JWKS at
//   `GET /oauth2/v3/certs` (with `Cache-Control: max-age`, fetches counted); tests also sign
//   their own bad tokens (wrong audience, expired, another key).
// - Calendar `events.watch` / `channels.stop`: channels per calendar with id, token,
//   resourceId and expiration (ttl honoured, `expireChannels()` ends them early); Google's
//   `sync` message on creation and an `exists` message to the channel's address on every change.
// - GitHub repository webhooks: `POST/GET /repos/{o}/{r}/hooks`, `DELETE …/hooks/{id}` (admin
//   permission required, 404 otherwise).
import { generateKeyPairSync, createSign, randomBytes, randomUUID } from 'node:crypto';

export const PUBSUB_AUDIENCE = 'https://integrations.example.com/webhooks/google/pubsub';
export const PUBSUB_ACCOUNT = 'gmail-push@test-project.iam.gserviceaccount.com';
export const PUBSUB_TOPIC = 'projects/test-project/topics/gmail';

const b64url = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An RS256 JWT over `claims` with `key` ({privateKey, kid}). */
export function signJwt(claims, key, header = {}) {
  const input = `${b64url({ alg: 'RS256', typ: 'JWT', kid: key.kid, ...header })}.${b64url(claims)}`;
  const sig = createSign('RSA-SHA256').update(input).sign(key.privateKey);
  return `${input}.${sig.toString('base64url')}`;
}

export function rsaKey() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { privateKey, publicKey, kid: randomBytes(8).toString('hex') };
}

/** Gmail watches and the Pub/Sub push subscription on the fake Google `g` with its Gmail `mail`. */
export function addGmailPush(g, mail) {
  const { fake } = g;
  const key = rsaKey();
  const ps = {
    key,
    endpoint: undefined, // the push subscription's endpoint (the service's /webhooks/google/pubsub)
    audience: PUBSUB_AUDIENCE,
    serviceAccount: PUBSUB_ACCOUNT,
    topic: PUBSUB_TOPIC,
    certsFetches: 0,
    maxAge: 300,
    watches: new Map(), // email → {topicName, expiration, historyId}
    deliveries: [], // {messageId, status, ms}
    published: 0,
    /** Variables for the service under test. */
    vars() {
      return { GMAIL_PUBSUB_TOPIC: this.topic, GOOGLE_CERTS_URL: `${fake.url}/oauth2/v3/certs`, GOOGLE_PUBSUB_AUDIENCE: this.audience, GOOGLE_PUBSUB_SERVICE_ACCOUNT: this.serviceAccount };
    },
    /** Claims Google puts in a push token (overridable per test). */
    claims(over = {}) {
      const now = Math.floor(Date.now() / 1000);
      return { aud: this.audience, azp: '1234567890', email: this.serviceAccount, email_verified: true, exp: now + 3600, iat: now, iss: 'https://accounts.google.com', sub: '1234567890', ...over };
    },
    token(over = {}, signingKey = key) {
      return signJwt(this.claims(over), signingKey);
    },
    /** Pub/Sub's push body for a mailbox change. */
    body(emailAddress, historyId, messageId = String(BigInt(`0x${randomBytes(6).toString('hex')}`))) {
      const data = Buffer.from(JSON.stringify({ emailAddress, historyId: Number(historyId) })).toString('base64');
      return { message: { data, messageId, message_id: messageId, publishTime: new Date().toISOString(), publish_time: new Date().toISOString() }, subscription: 'projects/test-project/subscriptions/gmail-push' };
    },
    /** Delivers one push (as Pub/Sub would) to `url`; answers the status. */
    async push(url, body, token = this.token()) {
      const t0 = Date.now();
      const r = await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
      await r.text();
      this.deliveries.push({ messageId: body.message.messageId, status: r.status, ms: Date.now() - t0 });
      return r.status;
    },
  };
  fake.on('GET', '/oauth2/v3/certs', () => {
    ps.certsFetches++;
    const jwk = key.publicKey.export({ format: 'jwk' });
    return { headers: { 'cache-control': `public, max-age=${ps.maxAge}, must-revalidate, no-transform` }, json: { keys: [{ ...jwk, kid: key.kid, alg: 'RS256', use: 'sig' }] } };
  });
  const P = (p) => new RegExp(`^/gmail/v1/users/me/${p}$`);
  fake.on('POST', P('watch'), (req) => {
    const email = g.account(req);
    if (!email) return g.unauthorized;
    const topicName = req.json?.topicName;
    if (!topicName) return g.error(400, 'Invalid topicName does not match projects/[^/]+/topics/[^/]+');
    if (topicName !== ps.topic) return g.error(404, `Resource not found (resource=${topicName.split('/').pop()}).`, 'notFound');
    const box = mail.box(email);
    const expiration = Date.now() + 7 * 24 * 3600 * 1000;
    ps.watches.set(email, { topicName, expiration, historyId: box.historyId });
    return { json: { historyId: String(box.historyId), expiration: String(expiration) } };
  });
  fake.on('POST', P('stop'), (req) => {
    const email = g.account(req);
    if (!email) return g.unauthorized;
    ps.watches.delete(email);
    return { status: 204 };
  });
  // Every change of a watched mailbox is published to the push endpoint.
  mail.onChange = (box) => {
    const w = ps.watches.get(box.email);
    if (!w || w.expiration <= Date.now() || !ps.endpoint) return;
    ps.published++;
    ps.push(ps.endpoint, ps.body(box.email, box.historyId)).catch(() => {});
  };
  return ps;
}

/** Calendar channels on the fake Google `g` with its Calendar `cal`. */
export function addCalendarPush(g, cal) {
  const { fake } = g;
  const ch = {
    channels: new Map(), // id → {id, token, address, calendarId, email, resourceId, expiration, seq, stopped}
    deliveries: [], // {channelId, state, status}
    /** Google's maximum for a channel; a test may shorten it. */
    maxTtlSeconds: 30 * 24 * 3600,
    live(calendarId) {
      return [...this.channels.values()].filter((c) => !c.stopped && c.expiration > Date.now() && (!calendarId || c.calendarId === calendarId));
    },
    /** Every channel ends now (as at its expiration). */
    expireChannels() {
      for (const c of this.channels.values()) c.expiration = Date.now() - 1;
    },
    async deliver(c, state) {
      const headers = {
        'x-goog-channel-id': c.id, 'x-goog-message-number': String(++c.seq), 'x-goog-resource-id': c.resourceId,
        'x-goog-resource-state': state, 'x-goog-resource-uri': `${fake.url}/calendar/v3/calendars/${encodeURIComponent(c.calendarId)}/events?alt=json`,
        'x-goog-channel-expiration': new Date(c.expiration).toUTCString(),
        ...(c.token !== undefined ? { 'x-goog-channel-token': c.token } : {}),
      };
      try {
        const r = await fetch(c.address, { method: 'POST', headers });
        await r.text();
        this.deliveries.push({ channelId: c.id, state, status: r.status });
      } catch (e) {
        this.deliveries.push({ channelId: c.id, state, status: 0 });
      }
    },
    /** Tells every live channel of the calendar that it changed. */
    changed(email, calendarId) {
      for (const c of this.live(calendarId)) if (c.email === email) this.deliver(c, 'exists');
    },
  };
  fake.on('POST', /^\/calendar\/v3\/calendars\/([^/]+)\/events\/watch$/, (req, m) => {
    const email = g.account(req);
    if (!email) return g.unauthorized;
    const calendarId = decodeURIComponent(m[1]);
    const real = cal.calendarOf(email, calendarId);
    if (!real) return g.error(404, 'Not Found', 'notFound');
    const { id, type, address, token, params } = req.json ?? {};
    if (!id || !/^[A-Za-z0-9\-_+/=]{1,64}$/.test(id)) return g.error(400, 'Invalid channel id', 'invalid');
    if (type !== 'web_hook' && type !== 'webhook') return g.error(400, 'Invalid channel type', 'invalid');
    if (!address || !/^https?:\/\//.test(address)) return g.error(400, 'Invalid address', 'invalid');
    if (ch.channels.has(id)) return g.error(400, `Channel id ${id} not unique`, 'channelIdNotUnique');
    const ttl = Math.min(Number(params?.ttl ?? 604800), ch.maxTtlSeconds);
    const c = { id, token, address, calendarId: real.id, email, resourceId: randomBytes(12).toString('base64url'), expiration: Date.now() + ttl * 1000, seq: 0, stopped: false };
    ch.channels.set(id, c);
    // Google's first message on a new channel.
    setTimeout(() => ch.deliver(c, 'sync'), 5);
    return { json: { kind: 'api#channel', id, resourceId: c.resourceId, resourceUri: `${fake.url}/calendar/v3/calendars/${encodeURIComponent(real.id)}/events?alt=json`, ...(token !== undefined ? { token } : {}), expiration: String(c.expiration) } };
  });
  fake.on('POST', '/calendar/v3/channels/stop', (req) => {
    if (!g.account(req)) return g.unauthorized;
    const c = ch.channels.get(req.json?.id ?? '');
    if (!c || c.resourceId !== req.json?.resourceId || c.stopped) return g.error(404, `Channel '${req.json?.id}' not found for project`, 'notFound');
    c.stopped = true;
    return { status: 204 };
  });
  // Changes made through the test helpers are announced on the calendar's channels.
  for (const name of ['addEvent', 'touch']) {
    const original = cal[name].bind(cal);
    cal[name] = (email, calendarId, ...rest) => {
      const out = original(email, calendarId, ...rest);
      const real = cal.calendarOf(email, calendarId)?.id ?? calendarId;
      ch.changed(email, real);
      return out;
    };
  }
  return ch;
}

/** Repository webhooks on the fake GitHub `gh` (its `fake` and `repos`). */
export function addGithubHooks(gh) {
  const { fake } = gh;
  const hooks = { byRepo: new Map(), created: [], deleted: [], seq: 7000 };
  const repoOf = (m) => gh.repos.get(`${m[1]}/${m[2]}`.toLowerCase());
  const admin = (req, repo) => {
    const user = gh.users?.get((req.headers.authorization ?? '').replace(/^(Bearer|token) /, ''));
    return Boolean(user && repo && repo.permissions?.admin);
  };
  fake.on('POST', /^\/api\/repos\/([^/]+)\/([^/]+)\/hooks$/, (req, m) => {
    const repo = repoOf(m);
    if (!admin(req, repo)) return { status: 404, json: { message: 'Not Found', documentation_url: 'https://docs.github.com/rest/repos/webhooks#create-a-repository-webhook' } };
    const { name, config, events = ['push'], active = true } = req.json ?? {};
    if (name !== 'web' || !config?.url) return { status: 422, json: { message: 'Validation Failed', errors: [{ resource: 'Hook', code: 'custom', message: 'Config must have a url' }] } };
    if ((hooks.byRepo.get(repo.full_name) ?? []).some((h) => h.config.url === config.url)) {
      return { status: 422, json: { message: 'Validation Failed', errors: [{ resource: 'Hook', code: 'custom', message: 'Hook already exists on this repository' }] } };
    }
    const hook = { type: 'Repository', id: ++hooks.seq, name, active, events, config: { content_type: config.content_type ?? 'form', insecure_ssl: config.insecure_ssl ?? '0', url: config.url, ...(config.secret ? { secret: '********' } : {}) }, created_at: new Date().toISOString() };
    const list = hooks.byRepo.get(repo.full_name) ?? [];
    list.push({ ...hook, _secret: config.secret });
    hooks.byRepo.set(repo.full_name, list);
    hooks.created.push({ repo: repo.full_name, id: hook.id, secret: config.secret, url: config.url, events });
    return { status: 201, json: hook };
  });
  fake.on('GET', /^\/api\/repos\/([^/]+)\/([^/]+)\/hooks$/, (req, m) => {
    const repo = repoOf(m);
    if (!admin(req, repo)) return { status: 404, json: { message: 'Not Found' } };
    return { json: (hooks.byRepo.get(repo.full_name) ?? []).map(({ _secret, ...h }) => h) };
  });
  fake.on('DELETE', /^\/api\/repos\/([^/]+)\/([^/]+)\/hooks\/(\d+)$/, (req, m) => {
    const repo = repoOf(m);
    if (!admin(req, repo)) return { status: 404, json: { message: 'Not Found' } };
    const list = hooks.byRepo.get(repo.full_name) ?? [];
    const i = list.findIndex((h) => h.id === Number(m[3]));
    if (i < 0) return { status: 404, json: { message: 'Not Found' } };
    list.splice(i, 1);
    hooks.deleted.push({ repo: repo.full_name, id: Number(m[3]) });
    return { status: 204 };
  });
  /** A hook made by hand (or by an earlier deployment) on `fullName`. */
  hooks.add = (fullName, url) => {
    const hook = { type: 'Repository', id: ++hooks.seq, name: 'web', active: true, events: ['push'], config: { content_type: 'json', insecure_ssl: '0', url } };
    hooks.byRepo.set(fullName, [...(hooks.byRepo.get(fullName) ?? []), hook]);
    return hook;
  };
  return hooks;
}

export const newChannelId = () => randomUUID();
