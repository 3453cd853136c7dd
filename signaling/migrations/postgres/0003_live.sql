-- A running meeting's moderation (floor holder, muted sites, lock) survives a restart, and so
-- does attendance: last_seen is refreshed while a site is in, so that after a crash its
-- stay ends when it was last seen, not never.
ALTER TABLE meetings ADD COLUMN moderation TEXT NOT NULL DEFAULT '{}';
ALTER TABLE attendance ADD COLUMN last_seen BIGINT;
