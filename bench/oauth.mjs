// MCP OAuth figures (issue 27): the full OAuth round trip of a remote MCP client — register
// (RFC 7591), the authorization page with consent (a browser signed in once through the GitHub
// fake), the approval, the PKCE code exchange — and a `tools/call` (a GitHub read action against
// the fake) with an OAuth access token vs an API token, interleaved so that both see the same
// machine. Sequential requests; p50/p99.
import { createHash, randomBytes } from 'node:crypto';
import { Service, knownSecrets } from '../tests/lib/harness.mjs';
import { FakeUpstream } from '../tests/lib/fake-upstream.mjs';
import { cookieJar, unescapeHtml } from '../tests/lib/cookie-jar.mjs';

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const ms = (x) => Number(x.toFixed(2));
const summary = (lat) => ({ n: lat.length, p50Ms: ms(pct(lat, 50)), p99Ms: ms(pct(lat, 99)) });
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const unescape = unescapeHtml;
const REDIRECT = 'http://127.0.0.1:7777/callback';

export async function benchOAuth({ rounds = 40, calls = 200, buildDir = 'build' } = {}) {
  const fake = await new FakeUpstream('github').start();
  const { startFakeGitHubOn } = await import('../tests/lib/fake-github.mjs');
  const gh = startFakeGitHubOn(fake);
  const GH = 'gho_bench_oauth_token_00000000000000000';
  knownSecrets.add(GH);
  gh.addUser(GH, { id: 7, login: 'bench', name: 'Bench', email: null, emails: [{ email: 'bench.oauth@example.com', primary: true, verified: true }] });
  gh.addRepo('bench/app');
  gh.addIssues('bench/app', 50);
  const svc = new Service({ upstreams: { github: gh.api, githubWeb: gh.web }, vars: { GITHUB_CLIENT_ID: 'gh-client-id', GITHUB_CLIENT_SECRET: 'gh-client-secret', TEST_LIMIT_SIGNIN_LIMITER: '10000' }, buildDir });
  try {
    await svc.start();
    const user = await svc.createUser({ email: 'bench.oauth@example.com' });
    const created = await svc.request('POST', '/api/integrations', { token: user.token, body: { service: 'github', credentials: { access_token: GH }, config: { syncFrequency: 'manual' } } });
    if (created.status !== 201) throw new Error(`configure failed: ${created.text}`);
    const { jar, go } = cookieJar();
    // One sign-in for the browser (its cookie lasts 15 minutes): the rounds measure the OAuth legs.
    const start = await go(`${svc.url}/auth/github?${new URLSearchParams({ return_to: '/oauth/authorize?bench=1' })}`);
    const atGitHub = new URL(start.headers.get('location'));
    gh.codes.set('bench-code', { token: GH, challenge: atGitHub.searchParams.get('code_challenge') });
    await go(`${svc.url}/auth/github/callback?${new URLSearchParams({ code: 'bench-code', state: atGitHub.searchParams.get('state') })}`);
    if (!jar.has('mcp_signin')) throw new Error('browser sign-in failed');

    const roundTrip = async () => {
      const registered = await fetch(`${svc.url}/oauth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ client_name: 'Bench', redirect_uris: [REDIRECT] }) });
      if (registered.status !== 201) throw new Error(`registration: ${registered.status} ${await registered.text()}`);
      const reg = await registered.json();
      const verifier = b64url(randomBytes(32));
      const challenge = b64url(createHash('sha256').update(verifier).digest());
      const q = new URLSearchParams({ response_type: 'code', client_id: reg.client_id, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: 'S256', state: 's', resource: `${svc.url}/mcp` });
      const html = await (await go(`${svc.url}/oauth/authorize?${q}`)).text();
      const form = Object.fromEntries([...html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)].map((m) => [m[1], unescape(m[2])]));
      if (!form.csrf) throw new Error(`no consent form: ${html.slice(0, 300)}`);
      const approved = await go(`${svc.url}/oauth/authorize`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: svc.url }, body: new URLSearchParams({ ...form, decision: 'approve', write: '1' }).toString() });
      const code = new URL(approved.headers.get('location')).searchParams.get('code');
      const tokens = await (await fetch(`${svc.url}/oauth/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, redirect_uri: REDIRECT, client_id: reg.client_id }).toString() })).json();
      if (!tokens.access_token) throw new Error(`token exchange failed: ${JSON.stringify(tokens)}`);
      return tokens.access_token;
    };
    for (let i = 0; i < 3; i++) await roundTrip();
    const flow = [];
    let access;
    for (let i = 0; i < rounds; i++) {
      const t0 = performance.now();
      access = await roundTrip();
      flow.push(performance.now() - t0);
    }

    const call = async (token, i) => {
      const r = await fetch(`${svc.url}/mcp`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-protocol-version': '2025-06-18' },
        body: JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'github_get_issue', arguments: { repository: 'bench/app', number: 1 + (i % 50) } } }),
      });
      const out = await r.json();
      if (r.status !== 200 || out.error || out.result?.isError) throw new Error(`tools/call: ${r.status} ${JSON.stringify(out).slice(0, 300)}`);
    };
    for (let i = 0; i < 10; i++) { await call(access, i); await call(user.token, i); }
    const viaOAuth = [];
    const viaApi = [];
    for (let i = 0; i < calls; i++) {
      // Alternate which goes first, so that neither always follows the other.
      const order = i % 2 ? [[access, viaOAuth], [user.token, viaApi]] : [[user.token, viaApi], [access, viaOAuth]];
      for (const [token, into] of order) {
        const t0 = performance.now();
        await call(token, i);
        into.push(performance.now() - t0);
      }
    }
    return { roundTrip: summary(flow), toolsCallOAuth: summary(viaOAuth), toolsCallApiToken: summary(viaApi) };
  } finally {
    await svc.stop();
    await fake.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await benchOAuth({ buildDir: process.argv[2] ?? 'build' }), null, 2));
}
