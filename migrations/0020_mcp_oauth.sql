-- MCP for remote clients (issue 27): the OAuth 2.1 authorization server of `/mcp`.

-- Clients: registered dynamically (RFC 7591), or identified by a client ID metadata document
-- (an https URL, fetched and cached here).
CREATE TABLE mcp_clients (
  client_id TEXT PRIMARY KEY,
  kind TEXT NOT NULL CHECK (kind IN ('registered', 'metadata')),
  client_name TEXT,
  redirect_uris TEXT NOT NULL,          -- JSON array
  fetched_at TEXT,                      -- metadata documents: when they were read
  created_at TEXT NOT NULL
);

-- Authorization codes: single use, 60 seconds, bound to the client, its redirect URI and the
-- PKCE challenge (stored hashed).
CREATE TABLE mcp_codes (
  code_hash TEXT PRIMARY KEY,
  client_id TEXT NOT NULL,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  redirect_uri TEXT NOT NULL,
  code_challenge TEXT NOT NULL,
  scope TEXT NOT NULL,
  resource TEXT NOT NULL,
  family_id TEXT NOT NULL,              -- the tokens this code is exchanged for (revoked if reused)
  used_at TEXT,
  expires_at TEXT NOT NULL
);

-- Access and refresh tokens (stored as SHA-256 hashes). A grant's tokens share a family: a
-- refresh token is used once (rotated); using one twice revokes the whole family. Access tokens
-- are bound to their audience, the MCP resource, and are accepted nowhere else.
CREATE TABLE mcp_tokens (
  id TEXT PRIMARY KEY,
  family_id TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('access', 'refresh')),
  token_hash TEXT NOT NULL UNIQUE,
  client_id TEXT NOT NULL,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  scope TEXT NOT NULL,
  audience TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  used_at TEXT,
  revoked_at TEXT,
  last_used_at TEXT,
  created_at TEXT NOT NULL
);
CREATE INDEX idx_mcp_tokens_family ON mcp_tokens(family_id);
CREATE INDEX idx_mcp_tokens_user_client ON mcp_tokens(user_id, client_id);
CREATE INDEX idx_mcp_tokens_expires ON mcp_tokens(expires_at);

-- A browser signed in for the authorization page only (cookie `mcp_signin`, path /oauth,
-- 15 minutes): created by the sign-in round trip that /oauth/authorize starts.
CREATE TABLE mcp_browser_sessions (
  token_hash TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL
);
