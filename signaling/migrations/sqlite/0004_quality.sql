-- Each site's stream quality over a meeting (its quality report), kept up to date while the
-- meeting runs: time measured in it, packets expected / missing before retransmission / lost
-- after it, the worst sample's loss (parts per million), round trips (sum and count for the
-- average, the worst), what arrived (kilobits, for the average; the lowest rate of a period)
-- and video freezes.
CREATE TABLE quality_reports (
    meeting_id     INTEGER NOT NULL REFERENCES meetings (id),
    site_id        INTEGER NOT NULL REFERENCES sites (id),
    connected_ms   INTEGER NOT NULL,
    expected       INTEGER NOT NULL,
    missing        INTEGER NOT NULL,
    lost           INTEGER NOT NULL,
    worst_loss_ppm INTEGER NOT NULL,
    rtt_sum_ms     INTEGER NOT NULL,
    rtt_samples    INTEGER NOT NULL,
    worst_rtt_ms   INTEGER NOT NULL,
    kilobits_in    INTEGER NOT NULL,
    lowest_kbps_in INTEGER,
    freezes        INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (meeting_id, site_id)
);
