-- Slack as a channel (contract §12): one Slack app per deployment, installed per workspace.

-- An installed workspace: the bot token sealed by the credential module (associated data:
-- purpose `slack:bot`, owner = the team id), one row per team.
CREATE TABLE slack_workspaces (
  team_id TEXT PRIMARY KEY,
  team_name TEXT,
  bot_user_id TEXT,
  app_id TEXT,
  bot_token_encrypted TEXT NOT NULL,
  scopes TEXT NOT NULL DEFAULT '',
  installed_by TEXT REFERENCES users(id) ON DELETE SET NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

-- A Slack person linked to a user of this service (at most one per user and workspace).
CREATE TABLE slack_links (
  team_id TEXT NOT NULL,
  slack_user_id TEXT NOT NULL,
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  slack_user_name TEXT,
  created_at TEXT NOT NULL,
  PRIMARY KEY (team_id, slack_user_id)
);
CREATE UNIQUE INDEX idx_slack_links_user_team ON slack_links(user_id, team_id);

-- One-time link codes, stored hashed, valid 15 minutes. One pending code per Slack person: while
-- it is valid, their further messages get no new reply (the throttle of the link reply).
-- `channel_id`/`thread_ts`: where the code was asked for (the confirmation goes there).
CREATE TABLE slack_link_codes (
  code_hash TEXT PRIMARY KEY,
  team_id TEXT NOT NULL,
  slack_user_id TEXT NOT NULL,
  channel_id TEXT NOT NULL,
  thread_ts TEXT,
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX idx_slack_link_codes_person ON slack_link_codes(team_id, slack_user_id);
CREATE INDEX idx_slack_link_codes_expiry ON slack_link_codes(expires_at);

-- Slack conversations (DMs, channels) a linked user has talked to the bot from: replies from
-- sessions may only go to these, so nobody can make the shared bot write into someone else's DM.
CREATE TABLE slack_conversations (
  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  team_id TEXT NOT NULL,
  channel_id TEXT NOT NULL,
  last_seen_at TEXT NOT NULL,
  PRIMARY KEY (user_id, team_id, channel_id)
);
