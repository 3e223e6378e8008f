-- Per-user Telegram bot. The bot token is sealed by the credential module; the webhook's
-- secret_token is kept only as a SHA-256 hash (it is compared, never sent again).
CREATE TABLE user_telegram_config (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
  bot_token_encrypted TEXT NOT NULL,
  bot_username TEXT NOT NULL,
  bot_info TEXT NOT NULL,
  bot_id TEXT,
  webhook_url TEXT,
  webhook_active INTEGER NOT NULL DEFAULT 0,
  webhook_secret_hash TEXT,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
  updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
