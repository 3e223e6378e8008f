-- The PR reconciler (issue 16): the run that claimed a session's row; rows are claimed by
-- setting it together with reconciled_at, then read back by it.
ALTER TABLE session_git_state ADD COLUMN reconcile_claim TEXT;
-- When GitHub last confirmed or refused the owner's access to the repository: verified access is
-- confirmed again daily, so a collaborator removed from a repository stops receiving its data.
ALTER TABLE session_git_state ADD COLUMN repo_checked_at TEXT;
CREATE INDEX idx_sgs_reconcile_claim ON session_git_state(reconcile_claim);
CREATE INDEX idx_sgs_reconciled_at ON session_git_state(reconciled_at);
