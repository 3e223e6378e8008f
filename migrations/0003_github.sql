-- GitHub production path: OAuth state, webhook deliveries, org repositories, personas.

-- OAuth `state` values, stored hashed; single use (deleted when consumed) and expiring.
-- `browser_hash` binds a login state to the browser that started it (a cookie nonce);
-- `user_id` binds an integration-connect state to the user who started it.
CREATE TABLE oauth_states (
  state_hash TEXT PRIMARY KEY,
  purpose TEXT NOT NULL,
  user_id TEXT REFERENCES users(id) ON DELETE CASCADE,
  browser_hash TEXT,
  redirect_uri TEXT NOT NULL,
  data TEXT NOT NULL DEFAULT '{}',
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX idx_oauth_states_expiry ON oauth_states(expires_at);

-- Inbound webhook deliveries already acted on (idempotency), per provider.
CREATE TABLE webhook_deliveries (
  provider TEXT NOT NULL,
  delivery_id TEXT NOT NULL,
  event TEXT,
  received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  PRIMARY KEY (provider, delivery_id)
);
CREATE INDEX idx_webhook_deliveries_received ON webhook_deliveries(received_at);

CREATE UNIQUE INDEX idx_users_github_username ON users(github_username COLLATE NOCASE) WHERE github_username IS NOT NULL;

CREATE TABLE agent_personas (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL DEFAULT 'default',
  name TEXT NOT NULL,
  slug TEXT NOT NULL,
  description TEXT,
  visibility TEXT NOT NULL DEFAULT 'shared' CHECK (visibility IN ('private', 'shared')),
  created_by TEXT REFERENCES users(id) ON DELETE SET NULL,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  UNIQUE (org_id, slug)
);

CREATE TABLE org_repositories (
  id TEXT PRIMARY KEY,
  org_id TEXT NOT NULL DEFAULT 'default',
  provider TEXT NOT NULL DEFAULT 'github',
  owner TEXT NOT NULL,
  name TEXT NOT NULL,
  full_name TEXT NOT NULL,
  description TEXT,
  default_branch TEXT NOT NULL DEFAULT 'main',
  language TEXT,
  topics TEXT NOT NULL DEFAULT '[]',
  enabled INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- GitHub names are case-insensitive: `Octo/App` and `octo/app` are one repository.
CREATE UNIQUE INDEX idx_org_repositories_name ON org_repositories(org_id, full_name COLLATE NOCASE);

CREATE TABLE org_repo_persona_defaults (
  id TEXT PRIMARY KEY,
  org_repo_id TEXT NOT NULL UNIQUE REFERENCES org_repositories(id) ON DELETE CASCADE,
  persona_id TEXT NOT NULL REFERENCES agent_personas(id) ON DELETE CASCADE,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
