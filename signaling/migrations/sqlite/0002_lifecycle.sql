-- The meeting lifecycle: sites, people, sessions, the schedule, invitations, attendance, audit.
-- Times are whole seconds since the Unix epoch (UTC); flags are 0/1. The PostgreSQL migration
-- of the same number has the same tables and columns.

CREATE TABLE sites (
    id           INTEGER PRIMARY KEY,
    code         TEXT    NOT NULL UNIQUE,
    name         TEXT    NOT NULL,
    level        TEXT    NOT NULL CHECK (level IN ('province', 'district', 'commune')),
    parent_id    INTEGER REFERENCES sites (id),
    terminal_id  TEXT    UNIQUE,
    -- argon2id of the room terminal's credential; NULL until an administrator issues one.
    device_hash  TEXT
);

CREATE TABLE people (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('administrator', 'chair', 'technician', 'participant')),
    site_id       INTEGER REFERENCES sites (id),
    password_hash TEXT    NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0
);

-- A session is a random token held by a browser or a room terminal; only its SHA-256 is kept.
CREATE TABLE sessions (
    token_hash TEXT    PRIMARY KEY,
    person_id  INTEGER REFERENCES people (id),
    site_id    INTEGER REFERENCES sites (id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    CHECK ((person_id IS NULL) <> (site_id IS NULL))
);

ALTER TABLE meetings ADD COLUMN agenda TEXT NOT NULL DEFAULT '';
ALTER TABLE meetings ADD COLUMN document_ref TEXT NOT NULL DEFAULT '';
ALTER TABLE meetings ADD COLUMN chair_id INTEGER REFERENCES people (id);
-- NULL for a meeting that is always open (the demo meeting).
ALTER TABLE meetings ADD COLUMN starts_at INTEGER;
ALTER TABLE meetings ADD COLUMN ends_at INTEGER;
ALTER TABLE meetings ADD COLUMN mode TEXT NOT NULL DEFAULT 'open';
ALTER TABLE meetings ADD COLUMN last_n INTEGER NOT NULL DEFAULT 0;
ALTER TABLE meetings ADD COLUMN state TEXT NOT NULL DEFAULT 'scheduled';
-- How the sites were invited, as the scheduler said it (JSON); meeting_sites has the result.
ALTER TABLE meetings ADD COLUMN invite TEXT NOT NULL DEFAULT '{"kind":"list","sites":[]}';
ALTER TABLE meetings ADD COLUMN roll_call_minutes INTEGER NOT NULL DEFAULT 30;
ALTER TABLE meetings ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
-- Edits so far: the iCalendar SEQUENCE, so calendars take the newest.
ALTER TABLE meetings ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
-- Meetings from before the lifecycle (the demo) are open at any time.
UPDATE meetings SET state = 'in_progress';

CREATE TABLE meeting_sites (
    meeting_id INTEGER NOT NULL REFERENCES meetings (id),
    site_id    INTEGER NOT NULL REFERENCES sites (id),
    PRIMARY KEY (meeting_id, site_id)
);
CREATE INDEX meeting_sites_by_site ON meeting_sites (site_id);

CREATE TABLE attendance (
    id         INTEGER PRIMARY KEY,
    meeting_id INTEGER NOT NULL REFERENCES meetings (id),
    site_id    INTEGER REFERENCES sites (id),
    person_id  INTEGER REFERENCES people (id),
    joined_at  INTEGER NOT NULL,
    left_at    INTEGER
);
CREATE INDEX attendance_by_meeting ON attendance (meeting_id);

-- Administration and moderation actions. Append-only: the triggers refuse changes.
CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,
    actor  TEXT    NOT NULL,
    action TEXT    NOT NULL,
    target TEXT    NOT NULL,
    detail TEXT    NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
