-- Session registry, git state and channel bindings (contract §6).

CREATE TABLE sessions (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  workspace TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'idle',
  title TEXT,
  parent_session_id TEXT REFERENCES sessions(id) ON DELETE SET NULL,
  is_orchestrator INTEGER NOT NULL DEFAULT 0,
  purpose TEXT NOT NULL DEFAULT 'interactive' CHECK (purpose IN ('interactive', 'orchestrator', 'workflow')),
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  last_active_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX idx_sessions_user ON sessions(user_id, created_at DESC, id DESC);
CREATE INDEX idx_sessions_parent ON sessions(parent_session_id);
-- At most one live orchestrator per user, so "create or return" cannot race into two.
CREATE UNIQUE INDEX idx_sessions_live_orchestrator ON sessions(user_id)
  WHERE is_orchestrator = 1 AND status NOT IN ('terminated', 'archived', 'error');

CREATE TABLE session_git_state (
  id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL UNIQUE REFERENCES sessions(id) ON DELETE CASCADE,
  source_type TEXT CHECK (source_type IN ('pr', 'issue', 'branch', 'manual')),
  source_pr_number INTEGER,
  source_issue_number INTEGER,
  source_repo_full_name TEXT,
  source_repo_url TEXT,
  branch TEXT,
  base_branch TEXT,
  ref TEXT,
  commit_count INTEGER NOT NULL DEFAULT 0,
  pr_number INTEGER,
  pr_title TEXT,
  pr_state TEXT CHECK (pr_state IN ('draft', 'open', 'closed', 'merged')),
  pr_url TEXT,
  pr_created_at TEXT,
  pr_merged_at TEXT,
  agent_authored INTEGER NOT NULL DEFAULT 1,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
-- Webhook lookups (repository names compare case-insensitively, as GitHub's do): PR events by
-- (repo, pr_number) and (repo, source_pr_number), pushes by (repo, branch).
CREATE INDEX idx_sgs_repo_pr ON session_git_state(source_repo_full_name COLLATE NOCASE, pr_number);
CREATE INDEX idx_sgs_repo_source_pr ON session_git_state(source_repo_full_name COLLATE NOCASE, source_pr_number);
CREATE INDEX idx_sgs_repo_branch ON session_git_state(source_repo_full_name COLLATE NOCASE, branch);
CREATE INDEX idx_sgs_agent_pr_state ON session_git_state(agent_authored, pr_state);

-- A user's channel leads to one session. The scope key embeds the owner's id, so it is
-- unique across users; (user_id, channel_type, channel_id) is the same rule spelled out.
CREATE TABLE channel_bindings (
  id TEXT PRIMARY KEY,
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  channel_type TEXT NOT NULL CHECK (channel_type IN ('web', 'api', 'telegram', 'slack', 'github')),
  channel_id TEXT NOT NULL,
  scope_key TEXT NOT NULL UNIQUE,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  org_id TEXT NOT NULL DEFAULT 'default',
  queue_mode TEXT NOT NULL DEFAULT 'followup' CHECK (queue_mode IN ('followup', 'collect', 'steer')),
  collect_debounce_ms INTEGER NOT NULL DEFAULT 3000,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  UNIQUE (user_id, channel_type, channel_id)
);
CREATE INDEX idx_channel_bindings_session ON channel_bindings(session_id);
CREATE INDEX idx_channel_bindings_user ON channel_bindings(user_id, created_at DESC, id DESC);
