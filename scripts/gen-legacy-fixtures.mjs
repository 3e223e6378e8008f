// Produces ciphertexts in the original worker's two legacy formats with Node's WebCrypto,
// an implementation independent of ours (anchor-behavior.md §4.1 and §4.2).
// Output: tests/fixtures/legacy-ciphertexts.json (committed; read by `cargo test`).
import { webcrypto as crypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';

const enc = new TextEncoder();
const b64 = (bytes) => Buffer.from(bytes).toString('base64');

// §4.1 lib/crypto.ts: key = ENCRYPTION_KEY.padEnd(32, '0').slice(0, 32), raw AES-GCM.
async function d1Key(secret) {
  const raw = enc.encode(secret.padEnd(32, '0').slice(0, 32));
  return crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt']);
}

// §4.2 durable-objects/api-keys.ts: PBKDF2-SHA256, salt "agent-ops-salt", 100k iterations.
async function doKey(secret) {
  const base = await crypto.subtle.importKey('raw', enc.encode(secret), 'PBKDF2', false, ['deriveKey']);
  return crypto.subtle.deriveKey(
    { name: 'PBKDF2', salt: enc.encode('agent-ops-salt'), iterations: 100000, hash: 'SHA-256' },
    base, { name: 'AES-GCM', length: 256 }, false, ['encrypt']);
}

async function seal(key, plaintext) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: 'AES-GCM', iv }, key, enc.encode(plaintext)));
  const out = new Uint8Array(12 + ct.length);
  out.set(iv); out.set(ct, 12);
  return b64(out);
}

const cases = [];
for (const [secret, plaintext] of [
  ['short-key', 'gho_16C7e42F292c6912E7710c838347Ae178B4a'],
  ['a-key-that-is-much-longer-than-thirty-two-characters!', 'ya29.refresh-token/with+symbols='],
  ['0123456789abcdef0123456789abcdef', '123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11'],
]) {
  cases.push({ format: 'd1', encryptionKey: secret, plaintext, ciphertext: await seal(await d1Key(secret), plaintext) });
}
for (const [secret, creds] of [
  ['short-key', { api_key: 'sk-test-123', note: 'üñí©ødé' }],
  ['0123456789abcdef0123456789abcdef', { access_token: 'ghp_abc', refresh_token: 'r1' }],
]) {
  const plaintext = JSON.stringify(creds);
  cases.push({ format: 'api-keys-do', encryptionKey: secret, plaintext, ciphertext: await seal(await doKey(secret), plaintext) });
}
writeFileSync(new URL('../tests/fixtures/legacy-ciphertexts.json', import.meta.url),
  JSON.stringify({ generator: 'scripts/gen-legacy-fixtures.mjs (Node WebCrypto)', cases }, null, 2) + '\n');
console.log(`wrote ${cases.length} cases`);
