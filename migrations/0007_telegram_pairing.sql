-- A personal bot answers only its owner: the first `/start <pairing code>` (the code is shown
-- once, at setup) records the owner's Telegram user id; everyone else is told the bot is private.
ALTER TABLE user_telegram_config ADD COLUMN owner_telegram_id TEXT;
ALTER TABLE user_telegram_config ADD COLUMN pairing_code_hash TEXT;
