-- The audit trail of every action run (the REST actions API and MCP tools/call): who, through
-- which token or client, which integration and action, the outcome and its duration; never
-- argument values. Kept 90 days (the daily purge).
CREATE TABLE action_audit (
  id TEXT PRIMARY KEY,
  created_at TEXT NOT NULL,
  user_id TEXT NOT NULL,
  caller_type TEXT NOT NULL,            -- api_token | session | oauth_client
  caller_id TEXT NOT NULL,              -- the token's or session's id, or the OAuth client's id
  via TEXT NOT NULL,                    -- rest | mcp
  integration_id TEXT,
  service TEXT,
  action TEXT NOT NULL,
  outcome TEXT NOT NULL,                -- ok, or the error code
  duration_ms INTEGER NOT NULL
);
CREATE INDEX idx_action_audit_user ON action_audit(user_id, created_at DESC, id DESC);
CREATE INDEX idx_action_audit_at ON action_audit(created_at DESC, id DESC);
