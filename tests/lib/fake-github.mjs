// A fake GitHub on 127.0.0.1 speaking the real paths and shapes: the OAuth web endpoints
// (under /web) and the REST API (under /api): /user, /user/emails, paginated /user/repos with
// Link headers, repositories, pulls (with the 422 "already exists" answer), issues.
import { startFake } from './fake-upstream.mjs';

export async function startFakeGitHub(t) {
  const fake = await startFake(t, 'github');
  const gh = {
    fake,
    api: `${fake.url}/api`,
    web: `${fake.url}/web`,
    users: new Map(), // token → {id, login, name, email, emails, scopes}
    codes: new Map(), // code → token
    repos: new Map(), // "owner/name" (lowercase) → repo
    pulls: new Map(), // "owner/name" → [pr]
    issues: new Map(),
    addUser(token, user) {
      this.users.set(token, { scopes: 'repo, read:user, user:email', emails: [], ...user });
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
  const auth = (req) => gh.users.get((req.headers.authorization ?? '').replace(/^Bearer /, ''));
  const unauthorized = { status: 401, json: { message: 'Bad credentials', documentation_url: 'https://docs.github.com/rest' } };
  const repoKey = (m) => `${decodeURIComponent(m[1])}/${decodeURIComponent(m[2])}`.toLowerCase();
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

  fake.on('POST', '/web/login/oauth/access_token', (req) => {
    const token = gh.codes.get(req.json?.code);
    if (!token || req.json?.client_secret !== 'gh-client-secret') {
      return { json: { error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' } };
    }
    gh.codes.delete(req.json.code);
    return { json: { access_token: token, token_type: 'bearer', scope: 'repo,read:user,user:email' } };
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
    return page(req, [...gh.repos.values()], '/user/repos');
  });
  fake.on('GET', /^\/api\/repos\/([^/]+)\/([^/]+)$/, (req, m) => {
    if (!auth(req)) return unauthorized;
    const repo = gh.repos.get(repoKey(m));
    return repo ? { json: repo } : { status: 404, json: { message: 'Not Found' } };
  });
  fake.on('GET', /^\/api\/repos\/([^/]+)\/([^/]+)\/pulls$/, (req, m) => {
    if (!auth(req)) return unauthorized;
    if (!gh.repos.has(repoKey(m))) return { status: 404, json: { message: 'Not Found' } };
    let pulls = (gh.pulls.get(repoKey(m)) ?? []).filter((p) => p.state === 'open');
    const head = req.query.get('head');
    if (head) pulls = pulls.filter((p) => `${p.head.repo.owner.login}:${p.head.ref}` === head);
    return page(req, pulls, `/repos/${m[1]}/${m[2]}/pulls`);
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
      user: { login: u.login, avatar_url: 'a' }, head: { ref: head, sha: 'abc123', repo: { full_name: repo.full_name, clone_url: repo.clone_url, owner: repo.owner } },
      base: { ref: base },
    };
    gh.pulls.set(key, [...list, pr]);
    return { status: 201, json: pr };
  });
  fake.on('GET', /^\/api\/repos\/([^/]+)\/([^/]+)\/issues$/, (req, m) => {
    if (!auth(req)) return unauthorized;
    return page(req, gh.issues.get(repoKey(m)) ?? [], `/repos/${m[1]}/${m[2]}/issues`);
  });
  return gh;
}
