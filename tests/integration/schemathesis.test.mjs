// Schemathesis (PyPI) against /openapi.json with a valid admin token: every documented
// operation is fuzzed; the run fails on any 5xx, any response that does not match the
// documented schema, or an undocumented status code. Upstreams are the local fakes, so a
// 5xx can only be the service's own fault.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { spawnSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { startService } from '../lib/harness.mjs';
import { startFakeGitHub } from '../lib/fake-github.mjs';
import { startFakeTelegram } from '../lib/fake-telegram.mjs';
import { SCHEMATHESIS_VERSION, schemathesisBin } from '../../scripts/setup.mjs';
import { root } from '../../scripts/lib.mjs';

const bin = schemathesisBin;

/** `npm test`'s set-up installs it (scripts/setup.mjs); a run of this file alone needs it too. */
function ensureSchemathesis() {
  const have = existsSync(bin) && spawnSync(bin, ['--version'], { encoding: 'utf8' }).stdout.includes(SCHEMATHESIS_VERSION);
  assert.ok(have, `schemathesis ${SCHEMATHESIS_VERSION} is not installed: run \`npm test\` (its set-up installs it) or \`node -e "import('./scripts/setup.mjs').then(m => m.setup({ forTests: true }))"\``);
}

test('schemathesis fuzzes every documented operation without a server error', { timeout: 900_000 }, async (t) => {
  ensureSchemathesis();
  const gh = await startFakeGitHub(t);
  const tg = await startFakeTelegram(t);
  const svc = await startService(t, {
    upstreams: { github: gh.api, githubWeb: gh.web, telegram: tg.url },
    // Every webhook endpoint configured (unconfigured ones answer 503 by design).
    vars: {
      GITHUB_CLIENT_ID: 'gh-client-id', GITHUB_CLIENT_SECRET: 'gh-client-secret', GITHUB_WEBHOOK_SECRET: 'st-secret',
      DISCORD_PUBLIC_KEY: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c', XERO_WEBHOOK_KEY: 'st-xero-key', HUBSPOT_CLIENT_SECRET: 'st-hubspot-secret',
      GOOGLE_CLIENT_ID: 'st-google-client', GOOGLE_CLIENT_SECRET: 'st-google-secret',
      GOOGLE_PUBSUB_AUDIENCE: 'https://st.example.com/webhooks/google/pubsub', GOOGLE_PUBSUB_SERVICE_ACCOUNT: 'st-push@st.iam.gserviceaccount.com',
      SLACK_CLIENT_ID: 'st.slack', SLACK_CLIENT_SECRET: 'st-slack-secret', SLACK_SIGNING_SECRET: 'st-slack-signing-secret',
      // The fuzzer sends many requests with broken credentials from one address: the limits
      // would turn most operations into 429s and leave their logic untested.
      TEST_LIMIT_AUTH_FAILURE_LIMITER: '1000000', TEST_LIMIT_SIGNIN_LIMITER: '1000000',
    },
  });
  const admin = await svc.createUser({ email: 'fuzz@example.com', admin: true });
  // Notion verified through an admin's window, so its events are checked (not refused with 503).
  const notion = { verification_token: 'secret_schemathesis_notion' };
  assert.equal((await svc.request('POST', '/api/admin/webhooks/notion/verification', { token: admin.token })).status, 200);
  assert.equal((await svc.request('POST', '/webhooks/notion', { body: notion })).status, 200);
  const confirmed = await svc.request('POST', '/api/admin/webhooks/notion/verification/confirm', { token: admin.token, body: { token: notion.verification_token } });
  assert.equal(confirmed.status, 200);
  const common = ['--url', svc.url, '-H', `Authorization: Bearer ${admin.token}`, '-n', '5', '--generation-deterministic', '--request-timeout', '15', '--max-failures', '50', '--no-color'];
  const schemathesis = (args) => new Promise((resolve) => {
    // Its cache (.schemathesis/) stays in the test state, out of the repository.
    const child = spawn(bin, ['run', `${svc.url}/openapi.json`, ...common, ...args], { cwd: join(root, '.test-state') });
    let text = '';
    child.stdout.on('data', (d) => { text += d; });
    child.stderr.on('data', (d) => { text += d; });
    child.on('exit', (code) => resolve({ code, text }));
  });
  // A provider's `test` calls whatever base URL the fuzzer stored: its documented 502 for an
  // unreachable endpoint is checked for shape and status, not counted as our server error.
  // Forgetting Notion's token (which makes /webhooks/notion answer 503) runs last, likewise.
  const probe = '(custom-providers/\\{providerId\\}/test|notion/verification-token)$';
  const runs = [
    await schemathesis(['-c', 'not_a_server_error,response_schema_conformance,status_code_conformance', '--exclude-path-regex', probe]),
    await schemathesis(['-c', 'response_schema_conformance,status_code_conformance', '--include-path-regex', probe]),
  ];
  for (const out of runs) {
    console.log(out.text.slice(out.text.lastIndexOf('SUMMARY')).slice(0, 1500));
    assert.match(out.text, /Tested: \d+/);
    assert.equal(out.code, 0, out.text.slice(out.text.indexOf('FAILURES'), out.text.indexOf('FAILURES') + 6000));
  }
});
