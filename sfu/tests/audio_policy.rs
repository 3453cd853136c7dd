//! Whose audio the SFU forwards: the loudest few, the floor in floor mode, never the muted;
//! and who is announced as speaking. Simulated meetings with real str0m clients.

mod sim;

use std::time::Duration;

use sfu::{AudioMode, EndpointId, MediaPolicy, MeetingId, SfuEvent};
use str0m::media::MediaKind;

use sim::Sim;

const SECOND: Duration = Duration::from_secs(1);
const MEETING: MeetingId = MeetingId(1);

fn meeting_of(n: usize) -> Sim {
    let mut sim = Sim::new();
    for _ in 0..n {
        sim.join(MEETING.0);
    }
    sim
}

/// A meeting of `n` where video reaches each receiver from `last_n` sources only.
fn last_n_meeting(n: usize, last_n: usize) -> Sim {
    let mut sim = meeting_of(n);
    sim.core.set_media_policy(
        sim.now,
        MEETING,
        MediaPolicy {
            last_n,
            ..MediaPolicy::default()
        },
    );
    sim
}

/// Sets every participant's audio level, in joining order.
fn set_levels(sim: &mut Sim, levels: &[i8]) {
    for (c, level) in sim.clients.iter_mut().zip(levels) {
        c.audio_level = *level;
    }
}

fn speaker_events(sim: &Sim) -> Vec<(Duration, EndpointId)> {
    sim.events
        .iter()
        .filter_map(|(t, e)| match e {
            SfuEvent::Speakers { dominant, .. } => Some((*t - sim.start, *dominant)),
            _ => None,
        })
        .collect()
}

/// Which origins `receiver` heard since `t`.
fn heard_since(sim: &Sim, receiver: usize, t: std::time::Instant) -> Vec<usize> {
    (0..sim.clients.len())
        .filter(|o| sim.clients[receiver].count_from_since(*o as u8, MediaKind::Audio, t) > 0)
        .collect()
}

#[test]
fn only_the_loudest_three_are_heard_and_a_new_speaker_is_announced() {
    let mut sim = meeting_of(6);
    for (i, level) in [-20, -30, -35, -70, -80, -127].into_iter().enumerate() {
        sim.clients[i].audio_level = level;
    }
    sim.run_for(3 * SECOND);
    let t = sim.now;
    sim.run_for(SECOND);
    assert_eq!(heard_since(&sim, 5, t), vec![0, 1, 2], "the three loudest");
    assert_eq!(heard_since(&sim, 0, t), vec![1, 2], "never one's own");
    assert_eq!(sim.core.dominant_speaker(MEETING), Some(sim.clients[0].id));

    // Participant 4 starts speaking loudly; 0 falls silent.
    sim.clients[4].audio_level = -10;
    sim.clients[0].audio_level = -127;
    sim.run_for(3 * SECOND);
    let events = speaker_events(&sim);
    assert_eq!(
        events.iter().map(|(_, d)| *d).collect::<Vec<_>>(),
        vec![sim.clients[0].id, sim.clients[4].id],
        "one announcement each, no flapping: {events:?}"
    );
    let t = sim.now;
    sim.run_for(SECOND);
    assert!(
        heard_since(&sim, 5, t).contains(&4),
        "the new speaker is heard"
    );
    assert!(
        !heard_since(&sim, 5, t).contains(&0),
        "the silent one made room"
    );

    // 0 speaks again and is heard again. The stretches the SFU skipped, and the switches of
    // sources on the receiver's audio slots, left no hole in the numbering of any stream the
    // receiver gets (a hole would read as loss and draw NACKs).
    sim.clients[0].audio_level = 0;
    sim.run_for(2 * SECOND);
    let t = sim.now;
    sim.run_for(SECOND);
    assert!(heard_since(&sim, 5, t).contains(&0), "0 is heard again");
    let from_0: Vec<_> = sim.clients[5]
        .received
        .iter()
        .filter(|r| r.origin == 0 && r.kind == MediaKind::Audio)
        .collect();
    let resumed = from_0
        .windows(2)
        .any(|w| w[1].publisher_seq > w[0].publisher_seq + 10);
    assert!(resumed, "0 was skipped for a while, then forwarded again");
    let audio: Vec<_> = sim.clients[5]
        .received
        .iter()
        .filter(|r| r.kind == MediaKind::Audio)
        .collect();
    let mut ssrcs: Vec<_> = audio.iter().map(|r| r.ssrc).collect();
    ssrcs.sort_unstable();
    ssrcs.dedup();
    assert!(
        ssrcs.len() <= 4,
        "loudest-3 audio arrives on at most 3 + 1 slots, not one per site: {ssrcs:?}"
    );
    let jumps: Vec<_> = ssrcs
        .iter()
        .flat_map(|ssrc| {
            let stream: Vec<_> = audio.iter().filter(|r| r.ssrc == *ssrc).collect();
            stream
                .windows(2)
                .filter(|w| w[1].seq != w[0].seq + 1)
                .map(|w| (w[0].seq, w[1].seq))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(jumps.is_empty(), "audio sequence numbers jump: {jumps:?}");
}

#[test]
fn floor_mode_forwards_only_the_chair_and_the_floor_holder() {
    let mut sim = meeting_of(5);
    for c in &mut sim.clients {
        c.audio_level = -25;
    }
    sim.run_for(2 * SECOND);
    let (chair, holder) = (sim.clients[0].id, sim.clients[1].id);
    sim.core.set_media_policy(
        sim.now,
        MEETING,
        MediaPolicy {
            mode: AudioMode::Floor,
            chair: Some(chair),
            floor_holder: Some(holder),
            ..MediaPolicy::default()
        },
    );
    let t = sim.now;
    sim.run_for(2 * SECOND);
    for receiver in 2..5 {
        assert_eq!(
            heard_since(&sim, receiver, t),
            vec![0, 1],
            "receiver {receiver}"
        );
    }
    assert_eq!(heard_since(&sim, 0, t), vec![1]);
    assert_eq!(heard_since(&sim, 1, t), vec![0]);

    // The chair gives the floor to 3: 1 falls silent for everyone.
    sim.core.set_media_policy(
        sim.now,
        MEETING,
        MediaPolicy {
            mode: AudioMode::Floor,
            chair: Some(chair),
            floor_holder: Some(sim.clients[3].id),
            ..MediaPolicy::default()
        },
    );
    let t = sim.now;
    sim.run_for(SECOND);
    assert_eq!(heard_since(&sim, 4, t), vec![0, 3]);
    // Video is not affected by the audio floor.
    assert!(sim.clients[4].count_from_since(2, MediaKind::Video, t) > 40);
}

#[test]
fn a_muted_endpoint_is_not_heard_whatever_it_sends() {
    let mut sim = meeting_of(3);
    for c in &mut sim.clients {
        c.audio_level = -20;
    }
    sim.clients[2].audio_level = 0;
    sim.run_for(2 * SECOND);
    let muted = sim.clients[2].id;
    sim.core.set_media_policy(
        sim.now,
        MEETING,
        MediaPolicy {
            muted: vec![muted],
            ..MediaPolicy::default()
        },
    );
    let t = sim.now;
    sim.run_for(2 * SECOND);
    assert_eq!(heard_since(&sim, 0, t), vec![1]);
    assert_eq!(heard_since(&sim, 1, t), vec![0]);
    assert!(
        sim.clients[0].count_from_since(2, MediaKind::Video, t) > 80,
        "its video still flows"
    );
}

#[test]
fn last_n_forwards_video_of_the_recent_speakers_then_the_first_joined() {
    let mut sim = last_n_meeting(6, 2);
    let video_since = |sim: &Sim, receiver: usize, t| -> Vec<usize> {
        (0..sim.clients.len())
            .filter(|o| sim.clients[receiver].count_from_since(*o as u8, MediaKind::Video, t) > 0)
            .collect()
    };
    sim.run_for(2 * SECOND);
    let t = sim.now;
    sim.run_for(SECOND);
    // Nobody has spoken: the first two to join, not counting oneself.
    assert_eq!(video_since(&sim, 5, t), vec![0, 1]);
    assert_eq!(video_since(&sim, 0, t), vec![1, 2]);
    assert_eq!(video_since(&sim, 1, t), vec![0, 2]);

    // 4 speaks: it becomes one of everyone's two.
    sim.clients[4].audio_level = -15;
    sim.run_for(2 * SECOND);
    let t = sim.now;
    sim.run_for(SECOND);
    assert_eq!(video_since(&sim, 5, t), vec![0, 4]);
    assert_eq!(video_since(&sim, 4, t), vec![0, 1]);
    // Audio is not limited by last-N.
    assert!(sim.clients[5].count_from_since(4, MediaKind::Audio, t) > 40);
}

#[test]
fn rooms_silent_with_dtx_stay_in_the_meeting_and_the_speaker_is_heard() {
    let mut sim = meeting_of(5);
    for c in &sim.clients {
        let opus = c
            .join_answer
            .lines()
            .find(|l| l.starts_with("a=fmtp:111 "))
            .expect("the answer has Opus parameters");
        assert!(opus.contains("usedtx=1"), "the SFU asks for DTX: {opus}");
    }
    // Room 0 speaks; the four others listen and, silent, send a packet every 400 ms.
    sim.clients[0].audio_level = -30;
    for c in &mut sim.clients[1..] {
        c.dtx = true;
    }
    // Longer than the SFU's liveness timeout (5 s): sparse audio keeps a room in.
    sim.run_for(8 * SECOND);
    let t = sim.now;
    sim.run_for(4 * SECOND);
    assert!(
        sim.clients.iter().all(|c| c.connected),
        "nobody was dropped"
    );
    assert!(
        !sim.events
            .iter()
            .any(|(_, e)| matches!(e, SfuEvent::Gone { .. }))
    );
    assert_eq!(sim.core.dominant_speaker(MEETING), Some(sim.clients[0].id));
    for listener in 1..5 {
        let heard = sim.clients[listener].count_from_since(0, MediaKind::Audio, t);
        assert!(heard > 190, "{listener} heard {heard} of ~200 packets");
    }
    // The speaker gets the listeners' sparse packets (all among the loudest three or not,
    // at most one each 400 ms), not 50 a second.
    let from_listeners: usize = (1..5)
        .map(|o| sim.clients[0].count_from_since(o as u8, MediaKind::Audio, t))
        .sum();
    assert!(
        from_listeners <= 4 * 11,
        "{from_listeners} packets from the silent rooms in 4 s"
    );
}

#[test]
fn last_n_holds_a_site_in_view_while_many_rooms_talk_at_once() {
    // Eight rooms all talking, a different three loudest every 250 ms; last-N 3. Without a
    // hold each receiver's videos would follow the loudest three, changing faster than
    // keyframes (or people) can follow.
    let mut sim = last_n_meeting(8, 3);
    let mut step = 0usize;
    let mut talk = |sim: &mut Sim, duration: Duration| {
        let end = sim.now + duration;
        while sim.now < end {
            for (i, c) in sim.clients.iter_mut().enumerate() {
                let loud = (0..3).any(|k| (step * 3 + k * 5) % 8 == i);
                c.audio_level = if loud { -15 } else { -45 };
            }
            step += 1;
            sim.run_for(Duration::from_millis(250));
        }
    };
    talk(&mut sim, 4 * SECOND);
    let t = sim.now;
    talk(&mut sim, 4 * SECOND);
    for receiver in 0..8 {
        let sources: Vec<usize> = (0..8)
            .filter(|o| sim.clients[receiver].count_from_since(*o as u8, MediaKind::Video, t) > 0)
            .collect();
        assert!(
            (3..=4).contains(&sources.len()),
            "receiver {receiver} got video of {sources:?} in 4 s (three places, at most one change)"
        );
    }
}

#[test]
fn a_talker_waiting_for_a_place_gets_it_when_the_hold_runs_out() {
    // Last-N 1: two places, and a receiver among them sees the other. 0 and 1 talk; then 1
    // falls silent and 3 talks, softer than 0 (so it never becomes the dominant speaker), and
    // nothing else changes: 3 must take 1's place once 1's hold has run out.
    let mut sim = last_n_meeting(4, 1);
    set_levels(&mut sim, &[-15, -20, -127, -127]);
    sim.run_for(2 * SECOND);
    set_levels(&mut sim, &[-15, -127, -127, -22]);
    sim.run_for(2 * SECOND);
    let t = sim.now;
    sim.run_for(SECOND);
    // What the dominant speaker (0) sees: the other place.
    let seen_by_0 = |sim: &Sim, o: u8, t| sim.clients[0].count_from_since(o, MediaKind::Video, t);
    assert!(
        seen_by_0(&sim, 1, t) > 0,
        "1 is still held two seconds after it spoke"
    );
    assert_eq!(seen_by_0(&sim, 3, t), 0, "3 waits for a place");
    sim.run_for(4 * SECOND);
    let t = sim.now;
    sim.run_for(SECOND);
    assert!(seen_by_0(&sim, 3, t) > 0, "3 has 1's place");
    assert_eq!(seen_by_0(&sim, 1, t), 0, "1 has yielded");
    assert!(
        sim.clients[2].count_from_since(0, MediaKind::Video, t) > 0,
        "the others see the dominant speaker"
    );
}

#[test]
fn a_site_is_held_for_the_full_time_after_it_stops_talking() {
    // Last-N 1, two places: 0 and 1 talk for 8 s while 3 talks softer and waits. When 1
    // stops, it keeps its place for 5 s more, however long it had talked.
    let mut sim = last_n_meeting(4, 1);
    set_levels(&mut sim, &[-15, -20, -127, -22]);
    sim.run_for(8 * SECOND);
    sim.clients[1].audio_level = -127;
    let stopped = sim.now;
    sim.run_for(8 * SECOND);
    // When the SFU put 3 on the video slot of 0 (who, being in a place, sees the other one).
    let (zero, three) = (sim.clients[0].id, sim.clients[3].id);
    let moved = sim
        .events
        .iter()
        .find_map(|(t, e)| match e {
            SfuEvent::Slots { endpoint, slots }
                if *endpoint == zero
                    && *t > stopped
                    && slots.iter().any(|s| s.source == Some(three)) =>
            {
                Some(*t - stopped)
            }
            _ => None,
        })
        .expect("3 gets the place");
    // 1's voice fades below speech within half a second of its last packet.
    assert!(
        moved >= 5 * SECOND && moved <= 6 * SECOND,
        "3 took 1's place {moved:?} after 1 stopped talking"
    );
}
