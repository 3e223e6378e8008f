// The harness's fake upstream (fault injection used by later suites), and the deploy dry run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { startFake } from '../lib/fake-upstream.mjs';
import { root } from '../../scripts/lib.mjs';

test('fake upstream serves routes and injects faults', async (t) => {
  const fake = await startFake(t, 'example');
  fake.on('GET', '/user', () => ({ json: { login: 'octocat' } }));
  fake.on('GET', /^\/repos\/([^/]+)\/([^/]+)$/, (req, m) => ({ json: { owner: m[1], name: m[2] } }));
  assert.deepEqual(await (await fetch(`${fake.url}/user`)).json(), { login: 'octocat' });
  assert.deepEqual(await (await fetch(`${fake.url}/repos/a/b.c`)).json(), { owner: 'a', name: 'b.c' });
  assert.equal((await fetch(`${fake.url}/missing`)).status, 404);

  fake.fault('/user', { status: 429, headers: { 'retry-after': '7' }, json: { message: 'slow down' } });
  const limited = await fetch(`${fake.url}/user`);
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get('retry-after'), '7');
  assert.equal((await fetch(`${fake.url}/user`)).status, 200, 'a fault applies the given number of times');

  fake.fault('/user', { malformed: true });
  await assert.rejects((await fetch(`${fake.url}/user`)).json());
  fake.fault('/user', { drop: true });
  await assert.rejects(fetch(`${fake.url}/user`));
  fake.fault('/user', { delayMs: 300, status: 503, json: {} });
  const t0 = Date.now();
  assert.equal((await fetch(`${fake.url}/user`)).status, 503);
  assert.ok(Date.now() - t0 >= 290);
  assert.equal(fake.requests.filter((r) => r.path === '/user').length, 6);
});

test('npm run deploy -- --dry-run works offline and reports the upload size', () => {
  const r = spawnSync('node', [join(root, 'scripts', 'deploy.mjs'), '--dry-run'], { encoding: 'utf8', timeout: 300_000 });
  assert.equal(r.status, 0, r.stderr);
  const m = `${r.stdout}${r.stderr}`.match(/Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/);
  assert.ok(m, 'upload size reported');
  console.log(`upload size: ${m[1]} KiB raw / ${m[2]} KiB gzip`);
  assert.ok(Number(m[2]) < 3072, 'within the Workers free-plan 3 MiB compressed limit');
});
