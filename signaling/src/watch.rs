//! The shell around [`Monitor`]: every few seconds it gathers what the SFU measures of each
//! site, the roll call of the open meetings and the room terminals' health, runs a round, pushes
//! the samples and the alerts to each meeting's chair, administrators and technicians, and
//! stores the meetings' quality reports every minute and once more when a meeting closes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use crate::AppState;
use crate::live::Presence;
use crate::monitor::{Observation, SAMPLE_EVERY, Totals};
use crate::protocol::{ServerMsg, SiteSample};
use crate::quality::per_site;
use crate::reports;

/// Reports are stored every this many rounds (a minute).
const STORE_EVERY: u64 = 12;

/// Starts the task.
pub fn spawn(state: AppState) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // What earlier runs of the bridge stored, per (meeting, site): this run adds to it.
        let mut earlier: HashMap<(i64, i64), Totals> = HashMap::new();
        let mut rounds = 0u64;
        loop {
            tick.tick().await;
            rounds += 1;
            let (observations, open) = gather(&state).await;
            let (round, followed) = {
                let mut monitor = state.monitor.lock().unwrap_or_else(|e| e.into_inner());
                let round = monitor.round(Instant::now(), crate::clock::now(), &observations);
                (round, monitor.meetings())
            };
            push(&state, round);
            let closed: Vec<i64> = followed
                .iter()
                .copied()
                .filter(|m| !open.contains(m))
                .collect();
            // Every minute all reports; otherwise those of the meetings that just closed.
            let due = if rounds.is_multiple_of(STORE_EVERY) {
                &followed
            } else {
                &closed
            };
            store(&state, &mut earlier, due).await;
            if !closed.is_empty() {
                let mut monitor = state.monitor.lock().unwrap_or_else(|e| e.into_inner());
                for meeting in &closed {
                    monitor.forget(*meeting);
                }
                earlier.retain(|(m, _), _| !closed.contains(m));
            }
        }
    });
}

/// What one round looks at: every site measured in a meeting, every site invited to an open
/// one; and the meetings open now.
async fn gather(state: &AppState) -> (Vec<Observation>, BTreeSet<i64>) {
    let placed = state.hub.placed().await;
    let live: BTreeSet<i64> = placed.iter().map(|p| p.meeting).collect();
    let mut measured = Vec::new();
    for meeting in &live {
        measured.extend(state.sfu.quality(sfu::MeetingId(*meeting)).await);
    }
    let figures = per_site(&placed, &measured);
    let cpu: HashMap<i64, f32> = state
        .hub
        .healths()
        .await
        .into_iter()
        .filter(|(_, r, age)| age.as_secs() < 30 && r.cpu.is_finite())
        .map(|(site, r, _)| (site, r.cpu))
        .collect();
    let mut sites: BTreeMap<(i64, i64), Observation> = BTreeMap::new();
    let mut open = BTreeSet::new();
    for (meeting, state_now) in state.db.open_meetings().await.unwrap_or_default() {
        open.insert(meeting.id);
        let Ok(setup) = crate::attendance::setup(&state.db, meeting.id).await else {
            continue;
        };
        if setup.invited.is_empty() {
            continue;
        }
        let started = state_now == crate::lifecycle::State::InProgress;
        let roll_call = state
            .hub
            .roll_call(meeting.id, setup)
            .await
            .unwrap_or_default();
        // Dashboards see roll call before anyone is in the meeting too (the hub pushes it only
        // for meetings that have participants).
        state.hub.to_watchers(
            meeting.id,
            ServerMsg::RollCall {
                sites: roll_call.clone(),
            },
        );
        for entry in roll_call {
            sites.insert(
                (meeting.id, entry.site),
                Observation {
                    meeting: meeting.id,
                    site: entry.site,
                    figures: None,
                    missing_from_started_meeting: started && entry.presence != Presence::Joined,
                    cpu: cpu.get(&entry.site).copied(),
                },
            );
        }
    }
    for ((meeting, site), f) in figures {
        let o = sites.entry((meeting, site)).or_insert_with(|| Observation {
            meeting,
            site,
            figures: None,
            missing_from_started_meeting: false,
            cpu: cpu.get(&site).copied(),
        });
        o.figures = Some(f);
    }
    // A meeting with media is open even without a schedule (the demo meeting).
    open.extend(live);
    (sites.into_values().collect(), open)
}

/// Sends each meeting's new samples and alert changes to those who see its roll call.
fn push(state: &AppState, round: crate::monitor::Round) {
    let mut by_meeting: BTreeMap<i64, (Vec<SiteSample>, Vec<crate::monitor::Alert>)> =
        BTreeMap::new();
    for (meeting, site, sample) in round.samples {
        by_meeting
            .entry(meeting)
            .or_default()
            .0
            .push(SiteSample { site, sample });
    }
    for alert in round.alerts {
        if alert.firing {
            tracing::warn!(kind = ?alert.kind, meeting = alert.meeting, site = alert.site, "alert");
        } else {
            tracing::info!(kind = ?alert.kind, meeting = alert.meeting, site = alert.site, "alert over");
        }
        by_meeting.entry(alert.meeting).or_default().1.push(alert);
    }
    for (meeting, (sites, alerts)) in by_meeting {
        state
            .hub
            .to_viewers(meeting, ServerMsg::Quality { sites, alerts });
    }
}

/// Stores the reports of `meetings`: for each site, what an earlier run stored plus this run's.
async fn store(state: &AppState, earlier: &mut HashMap<(i64, i64), Totals>, meetings: &[i64]) {
    let now = crate::clock::now();
    for &meeting in meetings {
        let totals = {
            let monitor = state.monitor.lock().unwrap_or_else(|e| e.into_inner());
            monitor.totals(meeting)
        };
        for (site, t) in totals {
            if let std::collections::hash_map::Entry::Vacant(slot) = earlier.entry((meeting, site))
            {
                match reports::load(&state.db, meeting, site).await {
                    Ok(stored) => {
                        slot.insert(stored.unwrap_or_default());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, meeting, site, "reading a quality report failed");
                        continue;
                    }
                }
            }
            let merged = reports::merge(&earlier[&(meeting, site)], &t);
            if let Err(e) = reports::save(&state.db, meeting, site, &merged, now).await {
                tracing::warn!(error = %e, meeting, site, "storing a quality report failed");
            }
        }
    }
}
