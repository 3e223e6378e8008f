-- Accounts and access (issue 15): invites, one-time sign-in codes, Google identities, and the
-- progress of maintenance jobs (the re-seal of legacy ciphertexts).

CREATE TABLE invites (
  id TEXT PRIMARY KEY,
  -- SHA-256 hex of the code (the code itself is shown once, at creation).
  code_hash TEXT NOT NULL UNIQUE,
  email TEXT,
  role TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin')),
  created_by TEXT REFERENCES users(id) ON DELETE SET NULL,
  expires_at TEXT NOT NULL,
  used_at TEXT,
  used_by TEXT REFERENCES users(id) ON DELETE SET NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX idx_invites_email ON invites(email) WHERE used_at IS NULL;
CREATE INDEX idx_invites_created ON invites(created_at DESC, id DESC);

-- The sign-in handoff: a single-use, 60-second code in the URL fragment, exchanged for a
-- session token by POST /auth/exchange (stored hashed).
CREATE TABLE signin_codes (
  code_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  provider TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL
);

ALTER TABLE users ADD COLUMN google_id TEXT;
CREATE UNIQUE INDEX idx_users_google_id ON users(google_id) WHERE google_id IS NOT NULL;

-- Which kind of token created an API token (a sign-in session may not mint a non-expiring one).
CREATE INDEX idx_auth_sessions_user_created ON auth_sessions(user_id, created_at DESC, id DESC);

CREATE TABLE maintenance_jobs (
  name TEXT PRIMARY KEY,
  status TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
  phase TEXT,
  cursor TEXT,
  scanned INTEGER NOT NULL DEFAULT 0,
  resealed INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  started_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  finished_at TEXT
);
