//! Each site of a live meeting as it goes, for technicians: a sample every few seconds from
//! the SFU's cumulative figures, a grade (good, fair, poor) for the dashboard's grid, the last
//! minutes kept for the site's charts, alerts as they fire and clear, and each site's totals
//! for the meeting's quality report. Pure: figures, roll call, health and times in; the task
//! that feeds it lives in `monitor_task`.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::quality::SiteFigures;

/// How often each site is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Samples kept per site for its charts (five minutes).
pub const HISTORY: usize = 60;

/// A site over one sampling period.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Sample {
    /// End of the period, Unix seconds.
    pub at: i64,
    /// Share of what the site sent that was missing before retransmission, 0 to 1.
    pub loss: f32,
    /// Share still missing after retransmission, 0 to 1.
    pub loss_after: f32,
    /// Round-trip time, milliseconds.
    pub rtt_ms: Option<f32>,
    /// Interarrival jitter of its streams, the largest, milliseconds.
    pub jitter_ms: f32,
    /// What arrives from it, kilobits per second.
    pub kbps_in: f32,
    /// What the SFU sends it, kilobits per second.
    pub kbps_out: f32,
    /// Frames per second of its video (the lowest layer, which is always sent); `None`
    /// without video.
    pub fps: Option<f32>,
    /// Freezes of its video in the period.
    pub freezes: u64,
    /// The SFU's bandwidth estimate towards it, kilobits per second.
    pub estimate_kbps: Option<f32>,
    /// The verdict.
    pub grade: Grade,
}

/// How a site is doing.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Grade {
    /// Nothing to see.
    Good,
    /// Noticeable: some loss, a long round trip, a low frame rate, a freeze.
    Fair,
    /// People notice: loss over 5 %, a round trip over 400 ms, under 5 frames a second, or
    /// repeated freezes.
    Poor,
}

/// The grade of a sample (thresholds in [`Grade`]'s documentation).
pub fn grade(s: &Sample) -> Grade {
    let rtt = s.rtt_ms.unwrap_or(0.0);
    let poor = s.loss > 0.05 || rtt > 400.0 || s.fps.is_some_and(|f| f < 5.0) || s.freezes >= 2;
    let fair = s.loss > 0.01
        || rtt > 200.0
        || s.jitter_ms > 30.0
        || s.fps.is_some_and(|f| f < 12.0)
        || s.freezes > 0;
    if poor {
        Grade::Poor
    } else if fair {
        Grade::Fair
    } else {
        Grade::Good
    }
}

/// What an alert is about (the same rules as `deploy/prometheus/alerts.yml`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// An invited site is not in a meeting that has started, for a minute.
    Offline,
    /// Over 5 % of what it sends is lost on the way, for 30 s.
    Loss,
    /// Its video stopped arriving, for 10 s.
    NoVideo,
    /// Its room terminal's CPU is over 90 %, for a minute.
    Cpu,
}

impl AlertKind {
    const ALL: [AlertKind; 4] = [Self::Offline, Self::Loss, Self::NoVideo, Self::Cpu];

    /// How long the condition must hold before the alert fires.
    pub fn hold(self) -> Duration {
        match self {
            Self::Offline | Self::Cpu => Duration::from_secs(60),
            Self::Loss => Duration::from_secs(30),
            Self::NoVideo => Duration::from_secs(10),
        }
    }
}

/// An alert that fired, or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Alert {
    /// What about.
    pub kind: AlertKind,
    /// The meeting.
    pub meeting: i64,
    /// The site.
    pub site: i64,
    /// When the condition began, Unix seconds.
    pub since: i64,
    /// Firing (false: it has just stopped).
    pub firing: bool,
}

/// A condition that must hold for a while before it counts.
#[derive(Debug, Clone, Copy, Default)]
struct Condition {
    since: Option<(Instant, i64)>,
    firing: bool,
}

impl Condition {
    /// Whether it now fires (`Some((true, began))`) or stops (`Some((false, began))`), with the
    /// Unix time its condition began; `None`: no change.
    fn step(
        &mut self,
        now: Instant,
        unix: i64,
        holds: bool,
        hold: Duration,
    ) -> Option<(bool, i64)> {
        if !holds {
            let began = self.since.take().map_or(unix, |(_, u)| u);
            return std::mem::take(&mut self.firing).then_some((false, began));
        }
        let (since, began) = *self.since.get_or_insert((now, unix));
        if !self.firing && now.saturating_duration_since(since) >= hold {
            self.firing = true;
            return Some((true, began));
        }
        None
    }
}

/// A site's figures for the whole meeting: its quality report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Totals {
    /// Time it was measured in the meeting, seconds.
    pub connected_seconds: f64,
    /// Packets its streams say it sent.
    pub expected: u64,
    /// Of those, missing before retransmission.
    pub missing: u64,
    /// Of those, missing after retransmission.
    pub lost: u64,
    /// The worst sample's loss (before retransmission), 0 to 1.
    pub worst_loss: f32,
    /// Sum and count of the round-trip samples, for the average.
    pub rtt_sum_ms: f64,
    /// See `rtt_sum_ms`.
    pub rtt_samples: u64,
    /// The longest round trip sampled, milliseconds.
    pub worst_rtt_ms: f32,
    /// Sum of the periods' incoming bitrates times their length (kilobits), for the average.
    pub kilobits_in: f64,
    /// The lowest incoming bitrate of a period, kilobits per second.
    pub lowest_kbps_in: Option<f32>,
    /// Video freezes.
    pub freezes: u64,
}

impl Totals {
    /// Average loss before retransmission, 0 to 1.
    pub fn loss(&self) -> Option<f64> {
        (self.expected > 0).then(|| self.missing as f64 / self.expected as f64)
    }

    /// Average round trip, milliseconds.
    pub fn rtt_ms(&self) -> Option<f64> {
        (self.rtt_samples > 0).then(|| self.rtt_sum_ms / self.rtt_samples as f64)
    }

    /// Average incoming bitrate, kilobits per second.
    pub fn kbps_in(&self) -> Option<f64> {
        (self.connected_seconds > 0.0).then(|| self.kilobits_in / self.connected_seconds)
    }
}

/// One site of a live meeting, as one round sees it.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The meeting.
    pub meeting: i64,
    /// The site.
    pub site: i64,
    /// Its cumulative figures at the SFU; `None` when it is not in the meeting.
    pub figures: Option<SiteFigures>,
    /// It is invited, the meeting has started and the site is not in it.
    pub missing_from_started_meeting: bool,
    /// Its terminal's CPU, 0 to 1, from its latest health report.
    pub cpu: Option<f32>,
}

/// What one round found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Round {
    /// New samples, per (meeting, site).
    pub samples: Vec<(i64, i64, Sample)>,
    /// Alerts that fired or stopped.
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Default)]
struct Track {
    last: Option<(Instant, SiteFigures)>,
    history: VecDeque<Sample>,
    conditions: [Condition; 4],
    totals: Totals,
    /// Video has arrived from it in this meeting.
    had_video: bool,
}

/// Every site of every live meeting.
#[derive(Debug, Default)]
pub struct Monitor {
    sites: BTreeMap<(i64, i64), Track>,
}

impl Monitor {
    /// One round at `now` (`unix`: the same moment in Unix seconds).
    pub fn round(&mut self, now: Instant, unix: i64, observations: &[Observation]) -> Round {
        let mut round = Round::default();
        for o in observations {
            let track = self.sites.entry((o.meeting, o.site)).or_default();
            let (mut video_stopped, mut loss_high) = (false, false);
            match &o.figures {
                Some(figures) => {
                    if let Some(sample) = track.sample(now, unix, figures) {
                        video_stopped = track.had_video && sample.fps.is_none_or(|f| f == 0.0);
                        loss_high = sample.loss > 0.05;
                        track.had_video |= sample.fps.is_some_and(|f| f > 0.0);
                        round.samples.push((o.meeting, o.site, sample));
                    }
                    track.last = Some((now, figures.clone()));
                }
                // Gone: the next time it comes, its counters start again.
                None => track.last = None,
            }
            let holds = [
                o.missing_from_started_meeting,
                loss_high,
                video_stopped,
                o.cpu.is_some_and(|c| c > 0.9),
            ];
            for ((kind, condition), holds) in AlertKind::ALL
                .into_iter()
                .zip(track.conditions.iter_mut())
                .zip(holds)
            {
                // A condition only moves when there is something to judge it by: loss and video
                // with a new sample; the others every round.
                let judged = match kind {
                    AlertKind::Loss | AlertKind::NoVideo => o.figures.is_some(),
                    AlertKind::Offline | AlertKind::Cpu => true,
                };
                if !judged {
                    continue;
                }
                if let Some((firing, since)) = condition.step(now, unix, holds, kind.hold()) {
                    round.alerts.push(Alert {
                        kind,
                        meeting: o.meeting,
                        site: o.site,
                        since,
                        firing,
                    });
                }
            }
        }
        round
    }

    /// A site's last samples, oldest first.
    pub fn history(&self, meeting: i64, site: i64) -> Vec<Sample> {
        self.sites
            .get(&(meeting, site))
            .map(|t| t.history.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Every site of a meeting that has been sampled: its latest sample.
    pub fn latest(&self, meeting: i64) -> Vec<(i64, Sample)> {
        self.in_meeting(meeting)
            .filter_map(|(site, t)| Some((site, *t.history.back()?)))
            .collect()
    }

    /// The alerts firing in a meeting.
    pub fn firing(&self, meeting: i64) -> Vec<Alert> {
        let mut out = Vec::new();
        for (site, t) in self.in_meeting(meeting) {
            for (kind, c) in AlertKind::ALL.into_iter().zip(&t.conditions) {
                if c.firing {
                    out.push(Alert {
                        kind,
                        meeting,
                        site,
                        since: c.since.map_or(0, |(_, u)| u),
                        firing: true,
                    });
                }
            }
        }
        out
    }

    /// Each site's totals for the meeting so far.
    pub fn totals(&self, meeting: i64) -> Vec<(i64, Totals)> {
        self.in_meeting(meeting)
            .map(|(site, t)| (site, t.totals))
            .collect()
    }

    /// Forgets a meeting (it ended).
    pub fn forget(&mut self, meeting: i64) {
        self.sites.retain(|(m, _), _| *m != meeting);
    }

    /// The meetings it follows.
    pub fn meetings(&self) -> Vec<i64> {
        let mut m: Vec<i64> = self.sites.keys().map(|(m, _)| *m).collect();
        m.dedup();
        m
    }

    fn in_meeting(&self, meeting: i64) -> impl Iterator<Item = (i64, &Track)> {
        self.sites
            .range((meeting, i64::MIN)..=(meeting, i64::MAX))
            .map(|((_, site), t)| (*site, t))
    }
}

impl Track {
    /// The sample since the last figures, if there were any (and they did not start again).
    fn sample(&mut self, now: Instant, unix: i64, cur: &SiteFigures) -> Option<Sample> {
        let (then, prev) = self.last.as_ref()?;
        let secs = now.saturating_duration_since(*then).as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let streams = |f: &SiteFigures| {
            let mut all = vec![f.audio];
            all.extend(f.video);
            all
        };
        let (now_streams, prev_streams) = (streams(cur), streams(prev));
        let restarted = now_streams
            .iter()
            .zip(&prev_streams)
            .any(|(n, p)| n.expected < p.expected || n.bytes < p.bytes)
            || cur.sent_bytes < prev.sent_bytes;
        if restarted {
            return None;
        }
        let delta: Vec<_> = now_streams
            .iter()
            .zip(&prev_streams)
            .map(|(n, p)| n.since(p))
            .collect();
        let sum = |get: fn(&sfu::quality::StreamStats) -> u64| delta.iter().map(get).sum::<u64>();
        let expected = sum(|s| s.expected);
        let ratio = |part: u64| {
            if expected == 0 {
                0.0
            } else {
                (part as f64 / expected as f64).min(1.0) as f32
            }
        };
        let per_second = |units: f64| (units / secs) as f32;
        let video = &delta[1];
        let sample = Sample {
            at: unix,
            loss: ratio(sum(|s| s.missing_at_first)),
            loss_after: ratio(sum(|s| s.lost)),
            rtt_ms: cur.rtt.map(|r| (r * 1000.0) as f32),
            jitter_ms: (cur.audio_jitter.max(cur.video_jitter) * 1000.0) as f32,
            kbps_in: per_second(sum(|s| s.bytes) as f64 * 8.0 / 1000.0),
            kbps_out: per_second((cur.sent_bytes - prev.sent_bytes) as f64 * 8.0 / 1000.0),
            fps: (cur.video[0].packets > 0).then(|| per_second(video.frames as f64)),
            freezes: video.freezes,
            estimate_kbps: cur.estimate_bps.map(|b| b as f32 / 1000.0),
            grade: Grade::Good,
        };
        let sample = Sample {
            grade: grade(&sample),
            ..sample
        };
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(sample);
        let t = &mut self.totals;
        t.connected_seconds += secs;
        t.expected += expected;
        t.missing += sum(|s| s.missing_at_first);
        t.lost += sum(|s| s.lost);
        t.worst_loss = t.worst_loss.max(sample.loss);
        if let Some(rtt) = sample.rtt_ms {
            t.rtt_sum_ms += f64::from(rtt);
            t.rtt_samples += 1;
            t.worst_rtt_ms = t.worst_rtt_ms.max(rtt);
        }
        t.kilobits_in += f64::from(sample.kbps_in) * secs;
        t.lowest_kbps_in = Some(
            t.lowest_kbps_in
                .map_or(sample.kbps_in, |l| l.min(sample.kbps_in)),
        );
        t.freezes += sample.freezes;
        Some(sample)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sfu::quality::StreamStats;

    const S: Duration = SAMPLE_EVERY;

    /// A site that has sent `n` periods of 250 audio and 375 video packets (25 fps), losing
    /// `missing` of every period's video.
    fn figures(n: u64, missing: u64) -> SiteFigures {
        let audio = StreamStats {
            packets: 250 * n,
            bytes: 250 * n * 80,
            expected: 250 * n,
            ..StreamStats::default()
        };
        let video = StreamStats {
            packets: 375 * n - missing * n,
            bytes: (375 * n - missing * n) * 1000,
            expected: 375 * n,
            missing_at_first: missing * n,
            lost: 0,
            frames: 125 * n,
            ..StreamStats::default()
        };
        SiteFigures {
            endpoints: 1,
            audio,
            video: [video, StreamStats::default(), StreamStats::default()],
            rtt: Some(0.04),
            sent_bytes: 500_000 * n,
            estimate_bps: Some(2_000_000),
            ..SiteFigures::default()
        }
    }

    fn observe(figures: Option<SiteFigures>) -> Observation {
        Observation {
            meeting: 4,
            site: 12,
            figures,
            missing_from_started_meeting: false,
            cpu: None,
        }
    }

    #[test]
    fn samples_are_rates_over_the_period_and_graded() {
        let t0 = Instant::now();
        let mut m = Monitor::default();
        assert!(
            m.round(t0, 100, &[observe(Some(figures(0, 0)))])
                .samples
                .is_empty()
        );
        let r = m.round(t0 + S, 105, &[observe(Some(figures(1, 0)))]);
        let (_, _, s) = r.samples[0];
        assert_eq!(s.at, 105);
        assert_eq!(s.loss, 0.0);
        assert_eq!(s.fps, Some(25.0));
        // (250 × 80 + 375 × 1000) bytes in 5 s.
        assert!((s.kbps_in - 632.0).abs() < 0.01, "{}", s.kbps_in);
        assert_eq!(s.kbps_out, 800.0);
        assert_eq!(s.rtt_ms, Some(40.0));
        assert_eq!(s.grade, Grade::Good);
        // 76 of 625 missing: 12 %, poor.
        let r = m.round(t0 + S * 2, 110, &[observe(Some(figures(2, 38)))]);
        let (_, _, s) = r.samples[0];
        assert!((s.loss - 76.0 / 625.0).abs() < 1e-6, "{}", s.loss);
        assert_eq!(s.grade, Grade::Poor);
        assert_eq!(m.history(4, 12).len(), 2);
        assert_eq!(m.latest(4), vec![(12, s)]);
    }

    #[test]
    fn grades_follow_their_thresholds() {
        let good = Sample {
            at: 0,
            loss: 0.0,
            loss_after: 0.0,
            rtt_ms: Some(30.0),
            jitter_ms: 5.0,
            kbps_in: 500.0,
            kbps_out: 500.0,
            fps: Some(25.0),
            freezes: 0,
            estimate_kbps: None,
            grade: Grade::Good,
        };
        assert_eq!(grade(&good), Grade::Good);
        assert_eq!(grade(&Sample { loss: 0.02, ..good }), Grade::Fair);
        assert_eq!(grade(&Sample { loss: 0.06, ..good }), Grade::Poor);
        assert_eq!(
            grade(&Sample {
                rtt_ms: Some(250.0),
                ..good
            }),
            Grade::Fair
        );
        assert_eq!(
            grade(&Sample {
                rtt_ms: Some(450.0),
                ..good
            }),
            Grade::Poor
        );
        assert_eq!(
            grade(&Sample {
                fps: Some(8.0),
                ..good
            }),
            Grade::Fair
        );
        assert_eq!(
            grade(&Sample {
                fps: Some(2.0),
                ..good
            }),
            Grade::Poor
        );
        assert_eq!(
            grade(&Sample { fps: None, ..good }),
            Grade::Good,
            "no camera is no fault"
        );
        assert_eq!(grade(&Sample { freezes: 1, ..good }), Grade::Fair);
        assert_eq!(grade(&Sample { freezes: 3, ..good }), Grade::Poor);
    }

    #[test]
    fn loss_alerts_after_30_seconds_and_stops_with_the_loss() {
        let t0 = Instant::now();
        let mut m = Monitor::default();
        let mut fired = Vec::new();
        // 40 of every 625 packets missing (6.4 %) for 60 s; then none.
        for i in 0..=20u32 {
            let mut cumulative = figures(u64::from(i), 0);
            cumulative.video[0].missing_at_first = 40 * u64::from(i.min(12));
            let r = m.round(t0 + S * i, i64::from(i) * 5, &[observe(Some(cumulative))]);
            fired.extend(r.alerts.into_iter().map(|a| (i, a.kind, a.firing)));
        }
        // Loss from the first sample (i = 1, 5 s); 30 s later (i = 7) it fires; clean again at
        // i = 13, it stops.
        assert_eq!(
            fired,
            vec![(7, AlertKind::Loss, true), (13, AlertKind::Loss, false)]
        );
    }

    #[test]
    fn video_that_stops_alerts_after_10_seconds() {
        let t0 = Instant::now();
        let mut m = Monitor::default();
        let mut kinds = Vec::new();
        for i in 0..10u32 {
            // Frames until the 4th period; then the counters stand still.
            let n = u64::from(i.min(4));
            let r = m.round(
                t0 + S * i,
                i64::from(i) * 5,
                &[observe(Some(figures(n, 0)))],
            );
            kinds.extend(r.alerts.into_iter().map(|a| (i, a.kind, a.firing)));
        }
        // No frames from i = 5 (the period 4 → 5); 10 s later, i = 7.
        assert_eq!(kinds, vec![(7, AlertKind::NoVideo, true)]);
        assert_eq!(m.firing(4).len(), 1);
    }

    #[test]
    fn a_site_missing_from_a_started_meeting_alerts_after_a_minute() {
        let t0 = Instant::now();
        let mut m = Monitor::default();
        let away = Observation {
            missing_from_started_meeting: true,
            ..observe(None)
        };
        assert!(
            m.round(t0, 0, std::slice::from_ref(&away))
                .alerts
                .is_empty()
        );
        assert!(
            m.round(t0 + S * 11, 55, std::slice::from_ref(&away))
                .alerts
                .is_empty()
        );
        let r = m.round(t0 + S * 12, 60, std::slice::from_ref(&away));
        assert_eq!(
            r.alerts,
            vec![Alert {
                kind: AlertKind::Offline,
                meeting: 4,
                site: 12,
                since: 0,
                firing: true
            }]
        );
        // It joins: the alert stops.
        let r = m.round(t0 + S * 13, 65, &[observe(Some(figures(0, 0)))]);
        assert_eq!(r.alerts.len(), 1);
        assert!(!r.alerts[0].firing);
    }

    #[test]
    fn a_busy_terminal_alerts_after_a_minute() {
        let t0 = Instant::now();
        let mut m = Monitor::default();
        let busy = Observation {
            cpu: Some(0.95),
            ..observe(None)
        };
        let calm = Observation {
            cpu: Some(0.5),
            ..observe(None)
        };
        assert!(
            m.round(t0, 0, std::slice::from_ref(&busy))
                .alerts
                .is_empty()
        );
        assert!(
            m.round(t0 + S * 6, 30, std::slice::from_ref(&calm))
                .alerts
                .is_empty()
        );
        assert!(
            m.round(t0 + S * 7, 35, std::slice::from_ref(&busy))
                .alerts
                .is_empty()
        );
        let r = m.round(t0 + S * 19, 95, std::slice::from_ref(&busy));
        assert_eq!(r.alerts.len(), 1);
        assert_eq!((r.alerts[0].kind, r.alerts[0].since), (AlertKind::Cpu, 35));
        // It stops: the alert still says when its condition began, not when it stopped.
        let r = m.round(t0 + S * 20, 100, std::slice::from_ref(&calm));
        assert_eq!(r.alerts.len(), 1);
        let a = &r.alerts[0];
        assert_eq!((a.kind, a.firing, a.since), (AlertKind::Cpu, false, 35));
    }

    #[test]
    fn totals_make_the_quality_report() {
        let t0 = Instant::now();
        let mut m = Monitor::default();
        for i in 0..=4u32 {
            m.round(t0 + S * i, 0, &[observe(Some(figures(u64::from(i), 10)))]);
        }
        let totals = m.totals(4);
        let (site, t) = totals[0];
        assert_eq!(site, 12);
        assert_eq!(t.connected_seconds, 20.0);
        assert_eq!(t.expected, 4 * 625);
        assert_eq!(t.missing, 40);
        assert!((t.loss().expect("loss") - 40.0 / 2500.0).abs() < 1e-9);
        assert_eq!(t.rtt_ms(), Some(40.0));
        assert!(t.kbps_in().expect("kbps") > 600.0);
        m.forget(4);
        assert!(m.totals(4).is_empty());
    }

    #[test]
    fn a_site_that_reconnects_starts_again_without_a_bogus_sample() {
        let t0 = Instant::now();
        let mut m = Monitor::default();
        m.round(t0, 0, &[observe(Some(figures(10, 0)))]);
        // Its endpoint was replaced: counters from zero.
        let r = m.round(t0 + S, 5, &[observe(Some(figures(1, 0)))]);
        assert!(r.samples.is_empty());
        let r = m.round(t0 + S * 2, 10, &[observe(Some(figures(2, 0)))]);
        assert_eq!(r.samples.len(), 1);
        assert_eq!(r.samples[0].2.fps, Some(25.0));
    }
}
