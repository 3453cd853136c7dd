-- Meetings that clients can enter. The lifecycle (schedule, invitations, states) grows here.
CREATE TABLE meetings (
    id         INTEGER PRIMARY KEY,
    title      TEXT    NOT NULL,
    created_at TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);
