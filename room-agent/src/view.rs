//! What the room's screen shows full size: a pure choice, tested without a meeting.
//!
//! A meeting room has one screen and nobody to pick a tile, so the agent shows, in order:
//! the dominant speaker; when nobody speaks, the site holding the floor (it is about to
//! speak); else the meeting's chair; else the first other participant to have joined.

use serde_json::Value;

/// Another participant of the meeting, as the agent learns it from signaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Other {
    /// Its participant id.
    pub id: u64,
    /// The site it takes part for.
    pub site: Option<i64>,
    /// Whether it is the meeting's chair.
    pub chair: bool,
}

impl Other {
    /// Reads a `ParticipantInfo` of the protocol; `None` without an id.
    pub fn from_json(p: &Value) -> Option<Self> {
        Some(Self {
            id: p["id"].as_u64()?,
            site: p["site"].as_i64(),
            chair: p["chair"].as_bool().unwrap_or(false),
        })
    }
}

/// The participant to show: see the module's documentation. `others` is in joining order;
/// when several participants share a site (a reconnect not yet noticed), the latest wins.
pub fn choose(others: &[Other], dominant: Option<u64>, floor_site: Option<i64>) -> Option<u64> {
    let present = |id: u64| others.iter().any(|o| o.id == id);
    let latest =
        |pick: &dyn Fn(&Other) -> bool| others.iter().rev().find(|o| pick(o)).map(|o| o.id);
    dominant
        .filter(|d| present(*d))
        .or_else(|| floor_site.and_then(|site| latest(&|o| o.site == Some(site))))
        .or_else(|| latest(&|o| o.chair))
        .or_else(|| others.first().map(|o| o.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn other(id: u64, site: i64, chair: bool) -> Other {
        Other {
            id,
            site: Some(site),
            chair,
        }
    }

    #[test]
    fn nobody_else_shows_nothing() {
        assert_eq!(choose(&[], Some(3), Some(10)), None);
    }

    #[test]
    fn the_chair_is_shown_while_nobody_speaks_or_holds_the_floor() {
        let others = [other(1, 10, false), other(2, 11, true), other(3, 12, false)];
        assert_eq!(choose(&others, None, None), Some(2));
    }

    #[test]
    fn without_a_chair_the_first_to_join_is_shown() {
        let others = [other(4, 10, false), other(2, 11, false)];
        assert_eq!(choose(&others, None, None), Some(4));
    }

    #[test]
    fn the_floor_holder_comes_before_the_chair() {
        let others = [other(1, 10, false), other(2, 11, true), other(3, 12, false)];
        assert_eq!(choose(&others, None, Some(12)), Some(3));
    }

    #[test]
    fn the_speaker_comes_first() {
        let others = [other(1, 10, false), other(2, 11, true), other(3, 12, false)];
        assert_eq!(choose(&others, Some(1), Some(12)), Some(1));
    }

    #[test]
    fn a_speaker_who_left_or_is_us_is_ignored() {
        let others = [other(1, 10, false), other(2, 11, true)];
        assert_eq!(choose(&others, Some(9), None), Some(2));
    }

    #[test]
    fn a_floor_site_without_a_participant_falls_through() {
        let others = [other(1, 10, false), other(2, 11, true)];
        assert_eq!(choose(&others, None, Some(99)), Some(2));
    }

    #[test]
    fn a_site_that_reconnected_is_shown_by_its_latest_participant() {
        let others = [other(1, 10, false), other(5, 10, false)];
        assert_eq!(choose(&others, None, Some(10)), Some(5));
    }

    #[test]
    fn participant_info_is_read_from_the_protocol() {
        let p = serde_json::json!({"id": 7, "name": "Xã A", "site": 12, "chair": true});
        assert_eq!(Other::from_json(&p), Some(other(7, 12, true)));
        let guest = serde_json::json!({"id": 8, "name": "khách"});
        assert_eq!(
            Other::from_json(&guest),
            Some(Other {
                id: 8,
                site: None,
                chair: false
            })
        );
        assert_eq!(Other::from_json(&serde_json::json!({"name": "x"})), None);
    }
}
