-- Security fixes of issue 26.

-- Notion's verification token (item 1). It used to be whoever's came first; now a token is taken
-- only while an admin has a verification window open, every token received in it is held here
-- (sealed, bound to its hash) until an admin confirms the one Notion accepted, which becomes
-- webhook_secrets' 'notion' row: the only key events are verified with.
CREATE TABLE webhook_verification_windows (
  provider TEXT PRIMARY KEY,
  ends_at TEXT NOT NULL,
  opened_by TEXT REFERENCES users(id) ON DELETE SET NULL,
  opened_at TEXT NOT NULL
);
CREATE TABLE webhook_verification_pending (
  provider TEXT NOT NULL,
  -- SHA-256 of the token: one row per token, and how a confirmation finds it.
  token_hash TEXT NOT NULL,
  sealed TEXT NOT NULL,
  received_at TEXT NOT NULL,
  PRIMARY KEY (provider, token_hash)
);
-- A token kept by the first-come flow that no admin was ever shown was confirmed by nobody (it
-- may be an attacker's): it is dropped, and Notion's verification is run again through a window.
-- One an admin was shown is kept as confirmed (the admin pasted it into Notion, which accepts
-- only its own); DELETE /api/admin/webhooks/notion/verification-token forgets it when in doubt.
DELETE FROM webhook_secrets WHERE provider = 'notion' AND shown_at IS NULL;

-- User webhook triggers (item 6): the body's HMAC does not cover the query, so `{{query.*}}` is
-- filled only for a trigger whose signature covers the request target too (`signQuery`).
-- Triggers from before it have 0: their query placeholders render empty.
ALTER TABLE webhook_triggers ADD COLUMN sign_query INTEGER NOT NULL DEFAULT 0;
