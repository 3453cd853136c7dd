//! A meeting's life: scheduled → roll call → in progress → ended (or cancelled), as a pure
//! function of what is stored and the time, so that it is tested without a clock or a database.
//!
//! Roll call opens by itself a configurable time before the start; the chair starts the meeting
//! (from the roll call, or early) and ends it. A meeting nobody ended counts as ended
//! [`OVERRUN`] after its planned end, so that a forgotten meeting does not stay open for ever.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How long after its planned end a meeting that nobody ended counts as ended, in seconds.
pub const OVERRUN: i64 = 2 * 3600;

/// Where a meeting is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Planned; roll call has not opened.
    Scheduled,
    /// Sites are arriving; the chair sees who is there.
    RollCall,
    /// The chair has started it.
    InProgress,
    /// Over.
    Ended,
    /// Called off before it started.
    Cancelled,
}

impl State {
    /// The name stored in the database and used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::RollCall => "roll_call",
            Self::InProgress => "in_progress",
            Self::Ended => "ended",
            Self::Cancelled => "cancelled",
        }
    }

    /// The state of a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Scheduled,
            Self::RollCall,
            Self::InProgress,
            Self::Ended,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|state| state.as_str() == s)
    }

    /// Whether sites may be in the meeting (join, media).
    pub fn is_open(self) -> bool {
        matches!(self, Self::RollCall | Self::InProgress)
    }
}

/// The times that move a meeting along by themselves. `None` times: always open (the demo).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// Planned start, Unix seconds.
    pub starts_at: Option<i64>,
    /// Planned end, Unix seconds.
    pub ends_at: Option<i64>,
    /// How long before the start roll call opens, in seconds.
    pub roll_call: i64,
}

/// The state a meeting is in at `now`, given the state stored by the last action on it.
pub fn effective(stored: State, times: Times, now: i64) -> State {
    match stored {
        State::Ended | State::Cancelled => stored,
        State::Scheduled | State::RollCall | State::InProgress => {
            if times.ends_at.is_some_and(|end| now >= end + OVERRUN) {
                return State::Ended;
            }
            match (stored, times.starts_at) {
                (State::Scheduled, Some(start)) if now >= start - times.roll_call => {
                    State::RollCall
                }
                _ => stored,
            }
        }
    }
}

/// What a chair or an administrator does to a meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Change its details or invitations.
    Edit,
    /// Open roll call now, before its time.
    OpenRollCall,
    /// Start it.
    Start,
    /// End it.
    End,
    /// Call it off.
    Cancel,
}

impl Action {
    /// The name used in errors and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Edit => "edit",
            Self::OpenRollCall => "open_roll_call",
            Self::Start => "start",
            Self::End => "end",
            Self::Cancel => "cancel",
        }
    }
}

/// An action the meeting's state does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a meeting that is {} cannot {}", .from.as_str(), .action.as_str())]
pub struct NotAllowed {
    /// The meeting's state.
    pub from: State,
    /// What was asked.
    pub action: Action,
}

/// The state after `action` on a meeting in state `from` (its effective state).
pub fn apply(from: State, action: Action) -> Result<State, NotAllowed> {
    let to = match (from, action) {
        (State::Scheduled | State::RollCall, Action::Edit) => from,
        (State::Scheduled, Action::OpenRollCall) => State::RollCall,
        (State::Scheduled | State::RollCall, Action::Start) => State::InProgress,
        (State::RollCall | State::InProgress, Action::End) => State::Ended,
        (State::Scheduled | State::RollCall, Action::Cancel) => State::Cancelled,
        _ => return Err(NotAllowed { from, action }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3600;
    const TIMES: Times = Times {
        starts_at: Some(10 * HOUR),
        ends_at: Some(12 * HOUR),
        roll_call: HOUR / 2,
    };

    #[test]
    fn roll_call_opens_by_itself_before_the_start() {
        let at = |t| effective(State::Scheduled, TIMES, t);
        assert_eq!(at(9 * HOUR), State::Scheduled);
        assert_eq!(at(10 * HOUR - HOUR / 2 - 1), State::Scheduled);
        assert_eq!(at(10 * HOUR - HOUR / 2), State::RollCall);
        // The chair has not started it: still roll call after the planned start.
        assert_eq!(at(11 * HOUR), State::RollCall);
    }

    #[test]
    fn a_meeting_nobody_ended_ends_after_the_overrun() {
        for stored in [State::Scheduled, State::RollCall, State::InProgress] {
            assert_ne!(
                effective(stored, TIMES, 12 * HOUR + OVERRUN - 1),
                State::Ended
            );
            assert_eq!(effective(stored, TIMES, 12 * HOUR + OVERRUN), State::Ended);
        }
    }

    #[test]
    fn a_meeting_without_times_stays_as_stored() {
        let always = Times {
            starts_at: None,
            ends_at: None,
            roll_call: 0,
        };
        assert_eq!(
            effective(State::InProgress, always, i64::MAX / 2),
            State::InProgress
        );
        assert_eq!(effective(State::Scheduled, always, 0), State::Scheduled);
    }

    #[test]
    fn ended_and_cancelled_are_final() {
        for from in [State::Ended, State::Cancelled] {
            assert_eq!(effective(from, TIMES, 0), from);
            for action in [
                Action::Edit,
                Action::OpenRollCall,
                Action::Start,
                Action::End,
                Action::Cancel,
            ] {
                assert_eq!(apply(from, action), Err(NotAllowed { from, action }));
            }
        }
    }

    #[test]
    fn the_chair_moves_a_meeting_along() {
        assert_eq!(
            apply(State::Scheduled, Action::OpenRollCall),
            Ok(State::RollCall)
        );
        assert_eq!(apply(State::RollCall, Action::Start), Ok(State::InProgress));
        assert_eq!(apply(State::InProgress, Action::End), Ok(State::Ended));
        assert!(apply(State::InProgress, Action::Edit).is_err());
        assert!(apply(State::InProgress, Action::Cancel).is_err());
        assert!(apply(State::Scheduled, Action::End).is_err());
        assert_eq!(apply(State::RollCall, Action::Cancel), Ok(State::Cancelled));
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for s in [
            State::Scheduled,
            State::RollCall,
            State::InProgress,
            State::Ended,
            State::Cancelled,
        ] {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
        assert_eq!(State::parse("open"), None);
    }
}
