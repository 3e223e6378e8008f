-- The PR reconciler (issue 16): the run that claimed a session's row; rows are claimed by
-- setting it together with reconciled_at, then read back by it.
ALTER TABLE session_git_state ADD COLUMN reconcile_claim TEXT;
CREATE INDEX idx_sgs_reconcile_claim ON session_git_state(reconcile_claim);
CREATE INDEX idx_sgs_reconciled_at ON session_git_state(reconciled_at);
