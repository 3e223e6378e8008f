// Creating users and API tokens directly in D1: shared by `npm run user:create` and the
// integration harness, so both mint tokens exactly as the service expects them.
import { createHash, randomBytes, randomUUID } from 'node:crypto';

export function mintToken() {
  const token = `itk_${randomBytes(32).toString('base64url')}`;
  return { token, hash: createHash('sha256').update(token).digest('hex'), prefix: token.slice(0, 12) };
}

export const isoNow = () => new Date().toISOString();

/** SQL statements (with params) that create-or-find a user by email and give it a new token. */
export function userStatements({ email, name = null, admin = false, tokenName = 'user:create' }) {
  const userId = randomUUID();
  const t = mintToken();
  const now = isoNow();
  const role = admin ? 'admin' : 'member';
  return {
    token: t.token,
    statements: [
      // An existing user keeps its id; --admin promotes it.
      ['INSERT INTO users (id, email, name, role, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5) ' +
        "ON CONFLICT(email) DO UPDATE SET role = CASE WHEN ?4 = 'admin' THEN 'admin' ELSE users.role END, " +
        'name = COALESCE(?3, users.name), updated_at = ?5', [userId, email, name, role, now]],
      ['INSERT INTO api_tokens (id, user_id, name, token_hash, prefix, created_at) ' +
        'SELECT ?1, id, ?2, ?3, ?4, ?5 FROM users WHERE email = ?6', [randomUUID(), tokenName, t.hash, t.prefix, now, email]],
      ['SELECT id FROM users WHERE email = ?1', [email]],
    ],
  };
}
