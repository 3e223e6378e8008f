-- Background work that cannot run away (issue 30).
-- A run's queue messages form one chain: each carries the chain's number, and a slice runs only
-- for the run's current chain. When the cron finds a run whose chain is gone (no slice has run
-- for a minute and no lease is held), it starts the next chain; a message of the old one that
-- turns up later stops at once.
ALTER TABLE sync_logs ADD COLUMN chain INTEGER NOT NULL DEFAULT 0;
-- When a slice last ran (claimed the lease), whether or not it made progress: what tells a
-- chain that is alive from one that is gone.
ALTER TABLE sync_logs ADD COLUMN slice_at TEXT;
-- Slices in a row that committed nothing; the run fails with SYNC_NO_PROGRESS after 5.
ALTER TABLE sync_logs ADD COLUMN idle_slices INTEGER NOT NULL DEFAULT 0;
