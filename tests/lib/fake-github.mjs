// A fake GitHub on 127.0.0.1 speaking the real paths and shapes: the OAuth web endpoints
// (under /web) and the REST API (under /api): /user, /user/emails, paginated /user/repos with
// Link headers, repositories, pulls (with the 422 "already exists" answer), issues, and the
// deletion of an app authorization (`DELETE /applications/{client_id}/grant`, basic auth with the
// app's client id and secret; recorded in `grantDeletions`). Codes issued with `expiring: true`
// give a GitHub App's expiring user token (`expires_in`, `refresh_token`,
// `refresh_token_expires_in`); `grant_type=refresh_token` rotates both (the old ones stop
// working), `bad_refresh_token` for a used or revoked one; `expire(token)` ends a token early.
import { createHash, randomBytes } from 'node:crypto';
import { startFake } from './fake-upstream.mjs';

export async function startFakeGitHub(t) {
  return startFakeGitHubOn(await startFake(t, 'github'));
}

/** The fake GitHub's routes on an already started fake server. */
export function startFakeGitHubOn(fake) {
  const gh = {
    fake,
    api: `${fake.url}/api`,
    web: `${fake.url}/web`,
    users: new Map(), // token → {id, login, name, email, emails, scopes}
    codes: new Map(), // code → token
    repos: new Map(), // "owner/name" (lowercase) → repo
    pulls: new Map(), // "owner/name" → [pr]
    issues: new Map(),
    commits: new Map(), // "owner/name" → [commit]
    comments: [],
    /** The OAuth app's credentials (basic auth of the applications API). */
    clientId: 'gh-client-id',
    clientSecret: 'gh-client-secret',
    /** Every grant deletion asked for: {clientId, token, authorized} (the grant's tokens stop working). */
    grantDeletions: [],
    /** Expiring user tokens: token → expiry (ms); refresh token → {user, token, used, revoked}. */
    expiresAt: new Map(),
    refreshTokens: new Map(),
    lifetimeSeconds: 28800,
    refreshDelayMs: 0,
    refreshes: 0,
    /** Called with every token the fake issues (tests register them as secrets). */
    onIssue: () => {},
    /** Ends `token` now: GitHub answers 401 to it. */
    expire(token) {
      this.expiresAt.set(token, 0);
    },
    /** Revokes every refresh token of `login` (the next refresh answers bad_refresh_token). */
    revokeRefresh(login) {
      for (const r of this.refreshTokens.values()) if (r.user.login === login) r.revoked = true;
    },
    /** Private repositories: "owner/name" (lowercase) → the tokens that can see them (GitHub
     * answers everyone else 404, as it does for a private repository). */
    access: new Map(),
    restrict(fullName, tokens) {
      this.access.set(fullName.toLowerCase(), new Set(tokens));
    },
    clock: Date.parse('2026-10-01T00:00:00Z'),
    /** A strictly increasing timestamp, so `since` cursors are exact. */
    tick() {
      this.clock += 1000;
      return new Date(this.clock).toISOString().replace('.000Z', 'Z');
    },
    makeIssue(repo, number, extra = {}) {
      const now = this.tick();
      return {
        id: 500000 + number, number, title: `Issue ${number}`, body: 'text', state: 'open', html_url: `https://github.com/${repo}/issues/${number}`,
        user: { login: 'alice' }, labels: [{ name: 'bug' }], comments: 0, created_at: now, updated_at: now, closed_at: null, ...extra,
      };
    },
    addIssues(repo, count) {
      const list = this.issues.get(repo.toLowerCase()) ?? [];
      for (let i = 0; i < count; i++) list.push(this.makeIssue(repo, Math.max(0, ...list.map((x) => x.number)) + 1));
      this.issues.set(repo.toLowerCase(), list);
      return list;
    },
    addCommits(repo, count) {
      const list = this.commits.get(repo.toLowerCase()) ?? [];
      for (let i = 0; i < count; i++) {
        const date = this.tick();
        const sha = `${repo.replace(/\W/g, '')}${String(list.length).padStart(8, '0')}`;
        list.unshift({ sha, html_url: `https://github.com/${repo}/commit/${sha}`, commit: { message: `commit ${list.length}`, author: { name: 'A', date }, committer: { date } }, author: { login: 'alice' } });
      }
      this.commits.set(repo.toLowerCase(), list);
    },
    addUser(token, user) {
      // GitHub only shows a verified address as the public profile email.
      const emails = user.email ? [{ email: user.email, primary: true, verified: true, visibility: 'public' }] : [];
      this.users.set(token, { scopes: 'repo, read:user, user:email', emails, ...user });
      return this.users.get(token);
    },
    addRepo(fullName, extra = {}) {
      const [owner, name] = fullName.split('/');
      const repo = {
        id: this.repos.size + 1000, name, full_name: fullName, private: false, description: `${name} repo`,
        html_url: `https://github.com/${fullName}`, clone_url: `https://github.com/${fullName}.git`,
        default_branch: 'main', updated_at: '2026-11-01T00:00:00Z', language: 'Rust', owner: { login: owner },
        permissions: { admin: false, push: true, pull: true }, archived: false, ...extra,
      };
      this.repos.set(fullName.toLowerCase(), repo);
      return repo;
    },
  };
  const auth = (req) => {
    const token = (req.headers.authorization ?? '').replace(/^Bearer /, '');
    return gh.expiresAt.has(token) && gh.expiresAt.get(token) <= Date.now() ? undefined : gh.users.get(token);
  };
  /** An expiring user token and its refresh token for `user`, as GitHub answers them. */
  const expiring = (user, token = `ghu_${randomBytes(16).toString('hex')}`) => {
    const refresh = `ghr_${randomBytes(24).toString('hex')}`;
    gh.users.set(token, user);
    gh.expiresAt.set(token, Date.now() + gh.lifetimeSeconds * 1000);
    gh.refreshTokens.set(refresh, { user, token, used: false, revoked: false });
    gh.onIssue(token);
    gh.onIssue(refresh);
    return { access_token: token, expires_in: gh.lifetimeSeconds, refresh_token: refresh, refresh_token_expires_in: 15897600, token_type: 'bearer', scope: '' };
  };
  const unauthorized = { status: 401, json: { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' } };
  const repoKey = (m) => `${decodeURIComponent(m[1])}/${decodeURIComponent(m[2])}`.toLowerCase();
  const hidden = (req, key) => gh.access.has(key) && !gh.access.get(key).has((req.headers.authorization ?? '').replace(/^Bearer /, ''));
  const notFound = { status: 404, json: { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' } };
  const page = (req, items, path) => {
    const per = Math.min(Number(req.query.get('per_page') ?? 30), 100);
    const p = Number(req.query.get('page') ?? 1);
    const slice = items.slice((p - 1) * per, p * per);
    const last = Math.max(1, Math.ceil(items.length / per));
    const links = [];
    if (p < last) links.push(`<${gh.api}${path}?per_page=${per}&page=${p + 1}>; rel="next"`, `<${gh.api}${path}?per_page=${per}&page=${last}>; rel="last"`);
    if (p > 1) links.push(`<${gh.api}${path}?per_page=${per}&page=${p - 1}>; rel="prev"`);
    return { json: slice, headers: links.length ? { link: links.join(', ') } : {} };
  };

  // The consent page a browser is sent to: GitHub asks the signed-in person, who agrees; the
  // fake answers for `gh.consentToken`'s user (set by the test) and sends the browser back to
  // `redirect_uri` with a code (bound to the PKCE challenge) and the state.
  fake.on('GET', '/web/login/oauth/authorize', (req) => {
    const back = new URL(req.query.get('redirect_uri'));
    if (!gh.consentToken) back.searchParams.set('error', 'access_denied');
    else {
      const code = `code-${randomBytes(8).toString('hex')}`;
      gh.codes.set(code, { token: gh.consentToken, challenge: req.query.get('code_challenge') ?? undefined });
      back.searchParams.set('code', code);
    }
    back.searchParams.set('state', req.query.get('state') ?? '');
    return { status: 302, headers: { location: back.toString() } };
  });
  // GitHub takes JSON or a form; a code issued with a PKCE challenge needs its verifier.
  fake.on('POST', '/web/login/oauth/access_token', async (req) => {
    const p = req.json ?? req.form ?? {};
    if (p.grant_type === 'refresh_token') {
      gh.refreshes++;
      if (gh.refreshDelayMs) await new Promise((r) => setTimeout(r, gh.refreshDelayMs));
      const r = gh.refreshTokens.get(p.refresh_token);
      if (p.client_id !== gh.clientId || p.client_secret !== gh.clientSecret) return { json: { error: 'incorrect_client_credentials', error_description: 'The client_id and/or client_secret passed are incorrect.' } };
      if (!r || r.used || r.revoked) return { json: { error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect or expired.' } };
      r.used = true;
      gh.users.delete(r.token);
      return { json: expiring(r.user) };
    }
    const issued = gh.codes.get(p.code);
    const { token, challenge, expiring: expires } = typeof issued === 'string' ? { token: issued } : (issued ?? {});
    const verified = !challenge || (p.code_verifier && createHash('sha256').update(p.code_verifier).digest('base64url') === challenge);
    if (!token || p.client_secret !== 'gh-client-secret' || !verified) {
      return { json: { error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' } };
    }
    gh.codes.delete(p.code);
    if (expires) return { json: expiring(gh.users.get(token), token) };
    return { json: { access_token: token, token_type: 'bearer', scope: 'repo,read:user,user:email' } };
  });
  // An OAuth app's authorization by a user: every token of it stops working (204).
  fake.on('DELETE', /^\/api\/applications\/([^/]+)\/grant$/, (req, m) => {
    const [id, secret] = Buffer.from((req.headers.authorization ?? '').replace(/^Basic /, ''), 'base64').toString().split(':');
    const clientId = decodeURIComponent(m[1]);
    const authorized = id === clientId && id === gh.clientId && secret === gh.clientSecret;
    const token = req.json?.access_token;
    gh.grantDeletions.push({ clientId, token, authorized });
    if (!authorized) return { status: 404, json: { message: 'Not Found', documentation_url: 'https://docs.github.com/rest' } };
    if (!gh.users.has(token)) return { status: 422, json: { message: 'Validation Failed' } };
    gh.users.delete(token);
    return { status: 204 };
  });
  fake.on('GET', '/api/user', (req) => {
    const u = auth(req);
    if (!u) return unauthorized;
    return { json: { id: u.id, login: u.login, name: u.name, email: u.email ?? null, avatar_url: `https://avatars.example/${u.id}` }, headers: { 'x-oauth-scopes': u.scopes } };
  });
  fake.on('GET', '/api/user/emails', (req) => {
    const u = auth(req);
    return u ? { json: u.emails } : unauthorized;
  });
  fake.on('GET', '/api/user/repos', (req) => {
    if (!auth(req)) return unauthorized;
    // Like GitHub: a restricted (private) repository is listed only to the tokens that see it.
    return page(req, [...gh.repos.values()].filter((r) => !hidden(req, r.full_name.toLowerCase())), '/user/repos');
  });
  fake.on('GET', /^\/api\/repos\/([^/]+)\/([^/]+)$/, (req, m) => {
    if (!auth(req)) return unauthorized;
    const repo = gh.repos.get(repoKey(m));
    return repo && !hidden(req, repoKey(m)) ? { json: repo } : notFound;
  });
  // A repository by its id (as GitHub answers it: 404 to a token that cannot see it).
  fake.on('GET', /^\/api\/repositories\/(\d+)$/, (req, m) => {
    if (!auth(req)) return unauthorized;
    const repo = [...gh.repos.values()].find((r) => r.id === Number(m[1]));
    return repo && !hidden(req, repo.full_name.toLowerCase()) ? { json: repo } : notFound;
  });
  fake.on('GET', /^\/api\/repos\/([^/]+)\/([^/]+)\/pulls$/, (req, m) => {
    if (!auth(req)) return unauthorized;
    if (!gh.repos.has(repoKey(m))) return { status: 404, json: { message: 'Not Found' } };
    const state = req.query.get('state') ?? 'open';
    let pulls = (gh.pulls.get(repoKey(m)) ?? []).filter((p) => state === 'all' || p.state === state);
    const head = req.query.get('head');
    if (head) pulls = pulls.filter((p) => `${p.head.repo.owner.login}:${p.head.ref}` === head);
    if (req.query.get('sort') === 'updated') {
      pulls = [...pulls].sort((a, b) => (a.updated_at < b.updated_at ? 1 : -1) * (req.query.get('direction') === 'asc' ? -1 : 1));
    }
    return page(req, pulls, `/repos/${m[1]}/${m[2]}/pulls`);
  });
  fake.on('GET', /^\/api\/repos\/([^/]+)\/([^/]+)\/(issues|pulls)\/(\d+)$/, (req, m) => {
    if (!auth(req)) return unauthorized;
    if (hidden(req, repoKey(m))) return notFound;
    const list = (m[3] === 'issues' ? gh.issues : gh.pulls).get(repoKey(m)) ?? [];
    const item = list.find((i) => i.number === Number(m[4]));
    if (!item) return { status: 404, json: { message: 'Not Found' } };
    // Like GitHub: a pull request names its base repository (the one it is a PR of).
    const repo = gh.repos.get(repoKey(m));
    const base = m[3] === 'pulls' && !item.base && repo ? { base: { ref: 'main', repo: { id: repo.id, full_name: repo.full_name } } } : {};
    return { json: { ...item, ...base } };
  });
  fake.on('GET', /^\/api\/repos\/([^/]+)\/([^/]+)\/commits$/, (req, m) => {
    if (!auth(req)) return unauthorized;
    const commits = gh.commits.get(repoKey(m));
    if (!commits) return { status: 409, json: { message: 'Git Repository is empty.' } };
    const since = req.query.get('since');
    return page(req, commits.filter((c) => !since || c.commit.committer.date >= since), `/repos/${m[1]}/${m[2]}/commits`);
  });
  fake.on('POST', /^\/api\/repos\/([^/]+)\/([^/]+)\/issues$/, (req, m) => {
    const u = auth(req);
    if (!u) return unauthorized;
    const key = repoKey(m);
    if (!gh.repos.has(key)) return { status: 404, json: { message: 'Not Found' } };
    const list = gh.issues.get(key) ?? [];
    const issue = gh.makeIssue(key, Math.max(0, ...list.map((i) => i.number)) + 1, { title: req.json.title, body: req.json.body, user: { login: u.login } });
    gh.issues.set(key, [...list, issue]);
    return { status: 201, json: issue };
  });
  fake.on('POST', /^\/api\/repos\/([^/]+)\/([^/]+)\/issues\/(\d+)\/comments$/, (req, m) => {
    if (!auth(req)) return unauthorized;
    const issue = (gh.issues.get(repoKey(m)) ?? []).find((i) => i.number === Number(m[3]));
    if (!issue) return { status: 404, json: { message: 'Not Found' } };
    issue.comments = (issue.comments ?? 0) + 1;
    gh.comments.push({ repo: repoKey(m), number: issue.number, body: req.json.body });
    return { status: 201, json: { id: 9000 + gh.comments.length, body: req.json.body, html_url: `${issue.html_url}#comment` } };
  });
  fake.on('POST', /^\/api\/repos\/([^/]+)\/([^/]+)\/pulls$/, (req, m) => {
    const u = auth(req);
    if (!u) return unauthorized;
    const key = repoKey(m);
    const repo = gh.repos.get(key);
    if (!repo) return { status: 404, json: { message: 'Not Found' } };
    const list = gh.pulls.get(key) ?? [];
    const { head, base, title, body } = req.json;
    if (list.some((p) => p.state === 'open' && p.head.ref === head)) {
      return { status: 422, json: { message: 'Validation Failed', errors: [{ resource: 'PullRequest', code: 'custom', message: `A pull request already exists for ${repo.owner.login}:${head}.` }] } };
    }
    const number = 100 + list.length;
    const pr = {
      number, title, body, state: 'open', draft: false, html_url: `${repo.html_url}/pull/${number}`, updated_at: '2026-11-02T00:00:00Z',
      user: { id: u.id, login: u.login, avatar_url: 'a' }, head: { ref: head, sha: 'abc123', repo: { id: repo.id, full_name: repo.full_name, clone_url: repo.clone_url, owner: repo.owner } },
      base: { ref: base, repo: { id: repo.id, full_name: repo.full_name } }, merged_at: null,
    };
    gh.pulls.set(key, [...list, pr]);
    return { status: 201, json: pr };
  });
  fake.on('GET', /^\/api\/repos\/([^/]+)\/([^/]+)\/issues$/, (req, m) => {
    if (!auth(req)) return unauthorized;
    const state = req.query.get('state') ?? 'open';
    const since = req.query.get('since');
    let issues = (gh.issues.get(repoKey(m)) ?? []).filter((i) => (state === 'all' || (i.state ?? 'open') === state) && (!since || (i.updated_at ?? '') >= since));
    if (req.query.get('sort') === 'updated') issues = [...issues].sort((a, b) => (a.updated_at < b.updated_at ? -1 : 1) * (req.query.get('direction') === 'desc' ? -1 : 1));
    return page(req, issues, `/repos/${m[1]}/${m[2]}/issues`);
  });
  return gh;
}
