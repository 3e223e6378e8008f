// A fake Slack Web API on 127.0.0.1: POST /<method> with a bot token in the Authorization
// header (JSON or form bodies), Slack's `{ok, error}` answers. oauth.v2.access exchanges codes
// the test registered; chat.postMessage / chat.postEphemeral record what was sent and refuse
// text over 40,000 characters (`msg_too_long`); users.info knows the test's people;
// auth.revoke forgets a token. 429 with Retry-After comes from the fake server's faults.
import { createHmac } from 'node:crypto';
import { startFake } from './fake-upstream.mjs';

export const MESSAGE_LIMIT = 40_000;

/** Returns null when `text` is well-formed mrkdwn as the service writes it, else the problem:
 * balanced ``` blocks, every `<` opening a `<…>` link or mention on one line, no stray `>`
 * except a quote marker at the start of a line, and `&` only in &amp; &lt; &gt;. */
export function checkMrkdwn(text) {
  if ((text.match(/```/g) ?? []).length % 2) return 'unbalanced code block';
  for (const line of text.split('\n')) {
    const rest = line.replace(/<(?:https?:\/\/|mailto:|@|#|!)[^<>\s|]*(?:\|[^<>]*)?>/g, '');
    if (rest.includes('<')) return `stray "<" in: ${line.slice(0, 80)}`;
    if (rest.replace(/^(?:> ?)/, '').includes('>')) return `stray ">" in: ${line.slice(0, 80)}`;
    if (/&(?!amp;|lt;|gt;)/.test(rest)) return `bare "&" in: ${line.slice(0, 80)}`;
  }
  return null;
}

/** Slack's request signature of `body` at `timestamp` (seconds). */
export function sign(secret, body, timestamp = Math.floor(Date.now() / 1000)) {
  const ts = String(timestamp);
  return { 'x-slack-request-timestamp': ts, 'x-slack-signature': `v0=${createHmac('sha256', secret).update(`v0:${ts}:${body}`).digest('hex')}` };
}

export async function startFakeSlack(t) {
  const fake = await startFake(t, 'slack');
  const slack = {
    fake,
    url: fake.url,
    codes: new Map(), // OAuth code → oauth.v2.access answer
    tokens: new Set(), // valid bot tokens
    users: new Map(), // user id → users.info user
    sent: [], // {method, token, channel, thread_ts, text, user?, mrkdwn}
    exchanges: [], // form bodies of oauth.v2.access
    revoked: [],
    /** Registers an install: `code` exchanges for `token` in `team`. */
    addInstall(code, { token, team, teamName = 'Acme', botUserId = 'UBOT', appId = 'A1' }) {
      this.codes.set(code, {
        ok: true, access_token: token, token_type: 'bot', scope: 'app_mentions:read,chat:write,im:history,im:read,im:write,users:read',
        bot_user_id: botUserId, app_id: appId, team: { id: team, name: teamName }, enterprise: null, is_enterprise_install: false,
        authed_user: { id: 'UADMIN' },
      });
    },
    addUser(id, { displayName = '', realName = '', name = id.toLowerCase() } = {}) {
      this.users.set(id, { id, name, real_name: realName, profile: { display_name: displayName, real_name: realName } });
    },
    messagesIn(channel, threadTs) {
      return this.sent.filter((m) => m.channel === channel && (threadTs === undefined || m.thread_ts === threadTs));
    },
  };
  const ok = (extra = {}) => ({ json: { ok: true, ...extra } });
  const bad = (error) => ({ json: { ok: false, error } });
  const params = (req) => req.json ?? req.form ?? Object.fromEntries(req.query);
  const bearer = (req) => /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];

  // The install consent page a browser is sent to (SLACK_OAUTH_URL = `${url}/oauth/v2/authorize`):
  // the fake approves `slack.consentInstall` ({token, team, teamName}, set by the test) and sends
  // the browser back to `redirect_uri` with a code for it and the state.
  fake.on('GET', '/oauth/v2/authorize', (req) => {
    const back = new URL(req.query.get('redirect_uri'));
    if (!slack.consentInstall) back.searchParams.set('error', 'access_denied');
    else {
      const code = `slack-code-${slack.codes.size + 1}-${Date.now()}`;
      slack.addInstall(code, slack.consentInstall);
      back.searchParams.set('code', code);
    }
    back.searchParams.set('state', req.query.get('state') ?? '');
    return { status: 302, headers: { location: back.toString() } };
  });

  fake.on('POST', '/oauth.v2.access', (req) => {
    const p = params(req);
    slack.exchanges.push(p);
    if (!p.client_id || !p.client_secret) return bad('invalid_client_id');
    const answer = slack.codes.get(p.code);
    if (!answer) return bad('invalid_code');
    slack.codes.delete(p.code); // single use
    slack.tokens.add(answer.access_token);
    return { json: answer };
  });
  fake.on('POST', /^\/(chat\.postMessage|chat\.postEphemeral|users\.info|auth\.revoke)$/, (req, m) => {
    const token = bearer(req);
    if (!token) return bad('not_authed');
    if (!slack.tokens.has(token)) return bad('invalid_auth');
    const p = params(req);
    switch (m[1]) {
      case 'chat.postMessage':
      case 'chat.postEphemeral': {
        if (!p.channel) return bad('channel_not_found');
        if (!p.text || !String(p.text).trim()) return bad('no_text');
        if (p.text.length > MESSAGE_LIMIT) return bad('msg_too_long');
        if (m[1] === 'chat.postEphemeral' && !p.user) return bad('user_not_in_channel');
        const ts = `${1800000000 + slack.sent.length}.000100`;
        slack.sent.push({ method: m[1], token, channel: p.channel, thread_ts: p.thread_ts, text: p.text, user: p.user, mrkdwn: p.mrkdwn });
        return m[1] === 'chat.postMessage' ? ok({ channel: p.channel, ts, message: { text: p.text } }) : ok({ message_ts: ts });
      }
      case 'users.info': {
        const user = slack.users.get(p.user);
        return user ? ok({ user }) : bad('user_not_found');
      }
      case 'auth.revoke':
        slack.tokens.delete(token);
        slack.revoked.push(token);
        return ok({ revoked: true });
      default:
        return bad('unknown_method');
    }
  });
  return slack;
}
