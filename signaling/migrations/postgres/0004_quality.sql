-- Each site's stream quality over a meeting (its quality report), kept up to date while the
-- meeting runs: time measured in it, packets expected / missing before retransmission / lost
-- after it, the worst sample's loss (parts per million), round trips (sum and count for the
-- average, the worst), what arrived (kilobits, for the average; the lowest rate of a period)
-- and video freezes.
CREATE TABLE quality_reports (
    meeting_id     BIGINT NOT NULL REFERENCES meetings (id),
    site_id        BIGINT NOT NULL REFERENCES sites (id),
    connected_ms   BIGINT NOT NULL,
    expected       BIGINT NOT NULL,
    missing        BIGINT NOT NULL,
    lost           BIGINT NOT NULL,
    worst_loss_ppm BIGINT NOT NULL,
    rtt_sum_ms     BIGINT NOT NULL,
    rtt_samples    BIGINT NOT NULL,
    worst_rtt_ms   BIGINT NOT NULL,
    kilobits_in    BIGINT NOT NULL,
    lowest_kbps_in BIGINT,
    freezes        BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (meeting_id, site_id)
);
