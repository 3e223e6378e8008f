-- Integrity under abuse (issue 16): Telegram pairing codes expire; a session's repository is
-- verified with its owner's GitHub token (by numeric id) before it receives PR or push data;
-- PR updates apply in order; a push counts once per (session, head SHA); sessions working on
-- someone's PR see its state; the PR reconciler's bookkeeping.

ALTER TABLE user_telegram_config ADD COLUMN pairing_expires_at TEXT;

ALTER TABLE session_git_state ADD COLUMN repo_id TEXT;
ALTER TABLE session_git_state ADD COLUMN repo_verified INTEGER NOT NULL DEFAULT 0;
ALTER TABLE session_git_state ADD COLUMN pr_updated_at TEXT;
ALTER TABLE session_git_state ADD COLUMN source_pr_state TEXT;
ALTER TABLE session_git_state ADD COLUMN source_pr_title TEXT;
ALTER TABLE session_git_state ADD COLUMN source_pr_url TEXT;
ALTER TABLE session_git_state ADD COLUMN source_pr_updated_at TEXT;
ALTER TABLE session_git_state ADD COLUMN reconciled_at TEXT;
CREATE INDEX idx_sgs_repo_id_branch ON session_git_state(repo_id, branch);
CREATE INDEX idx_sgs_repo_id_pr ON session_git_state(repo_id, pr_number);
CREATE INDEX idx_sgs_repo_id_source_pr ON session_git_state(repo_id, source_pr_number);
CREATE INDEX idx_sgs_open_prs ON session_git_state(pr_state, reconciled_at) WHERE pr_number IS NOT NULL;

-- Pushes already counted: (session, head SHA).
CREATE TABLE session_pushes (
  session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  sha TEXT NOT NULL,
  claim TEXT,
  created_at TEXT NOT NULL,
  PRIMARY KEY (session_id, sha)
);

-- The webhook batch that last changed a session's PR state: its notification selects exactly
-- the rows that batch changed.
ALTER TABLE session_git_state ADD COLUMN pr_claim TEXT;
ALTER TABLE session_git_state ADD COLUMN source_pr_claim TEXT;
