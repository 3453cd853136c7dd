//! Behaviour of the SFU's room core in simulated meetings: real str0m clients, simulated
//! network and time. Each test runs seconds of a meeting in milliseconds, the same way every
//! time.

mod sim;

use std::time::Duration;

use sfu::{GoneReason, SfuEvent};
use str0m::media::MediaKind;

use sim::Sim;

const SECOND: Duration = Duration::from_secs(1);

fn all_connected(sim: &Sim) -> bool {
    sim.clients.iter().all(|c| c.connected)
}

#[test]
fn forwards_audio_and_video_to_every_other_participant_of_the_meeting() {
    let mut sim = Sim::new();
    let a = sim.join(1);
    let b = sim.join(1);
    let c = sim.join(1);
    let outsider = sim.join(2);
    sim.run_for(3 * SECOND);
    assert!(
        all_connected(&sim),
        "every client connects over ICE and DTLS"
    );

    for receiver in [a, b, c] {
        for origin in [a, b, c] {
            for kind in [MediaKind::Audio, MediaKind::Video] {
                let n = sim.clients[receiver].count_from(origin as u8, kind);
                if receiver == origin {
                    assert_eq!(n, 0, "{receiver} must not get its own {kind:?} back");
                } else {
                    // 3 s at 50 packets/s, minus connection setup and negotiation.
                    assert!(
                        n > 80,
                        "{receiver} got only {n} {kind:?} packets from {origin}"
                    );
                }
            }
        }
        let leaked = sim.clients[receiver].count_from(outsider as u8, MediaKind::Video);
        assert_eq!(leaked, 0, "media of another meeting must not leak in");
    }
    assert!(
        sim.clients[outsider].received.is_empty(),
        "alone in its meeting, it receives nothing"
    );
    let counters = sim.core.counters();
    assert_eq!(counters.meetings, 2);
    assert_eq!(counters.endpoints, 4);
    assert!(counters.forwarded_packets > 6 * 2 * 80);
}

#[test]
fn a_late_joiner_receives_the_others_and_is_received_by_them() {
    let mut sim = Sim::new();
    let a = sim.join(1);
    let b = sim.join(1);
    sim.run_for(Duration::from_millis(2500));
    let requests_before = sim.clients[a].keyframe_requests.len();
    let late = sim.join(1);
    sim.run_for(2 * SECOND);
    for (receiver, origin) in [(late, a), (late, b), (a, late), (b, late)] {
        let n = sim.clients[receiver].count_from(origin as u8, MediaKind::Video);
        assert!(
            n > 40,
            "{receiver} got only {n} video packets from {origin}"
        );
    }
    // It joined mid-way between A's periodic keyframes: the SFU asked A for one, and the
    // newcomer's video from A starts with it (a decoder cannot start anywhere else).
    assert!(
        sim.clients[a].keyframe_requests.len() > requests_before,
        "no keyframe request"
    );
    let first = sim.clients[late]
        .received
        .iter()
        .find(|r| r.origin == a as u8 && r.kind == MediaKind::Video)
        .expect("video from A");
    assert!(first.keyframe, "the first packet forwarded is a keyframe");
    let waited = first.at - sim.clients[a].keyframe_requests[requests_before].0;
    assert!(
        waited < Duration::from_millis(200),
        "the keyframe came on request, {waited:?} later"
    );
}

#[test]
fn keyframe_requests_are_relayed_to_the_publisher_and_rate_limited() {
    let mut sim = Sim::new();
    let a = sim.join(1);
    let b = sim.join(1);
    let c = sim.join(1);
    // Let the start of the meeting settle.
    sim.run_for(2 * SECOND);
    let before = sim.clients[a].keyframe_requests.len();

    let b_from_a = sim.clients[b]
        .rx_ssrc_from(a as u8, MediaKind::Video)
        .expect("B receives A's video");
    let c_from_a = sim.clients[c]
        .rx_ssrc_from(a as u8, MediaKind::Video)
        .expect("C receives A's video");
    let burst_start = sim.now;
    // Three requests within 200 ms, from two receivers.
    sim.request_keyframe(b, b_from_a);
    sim.run_for(Duration::from_millis(100));
    sim.request_keyframe(c, c_from_a);
    sim.run_for(Duration::from_millis(100));
    sim.request_keyframe(b, b_from_a);
    sim.run_for(SECOND);

    let relayed: Vec<_> = sim.clients[a].keyframe_requests[before..]
        .iter()
        .map(|(t, _)| *t - burst_start)
        .collect();
    assert_eq!(
        relayed.len(),
        2,
        "one request at once, the rest merged into one: {relayed:?}"
    );
    assert!(
        relayed[0] < Duration::from_millis(100),
        "the first goes out at once: {relayed:?}"
    );
    assert!(
        relayed[1] - relayed[0] >= Duration::from_millis(450),
        "the merged one waits for the interval: {relayed:?}"
    );
    assert!(sim.core.counters().keyframe_requests_coalesced >= 1);

    // After a quiet interval, a single request passes straight through again.
    let before = sim.clients[a].keyframe_requests.len();
    let t = sim.now;
    sim.request_keyframe(c, c_from_a);
    sim.run_for(SECOND);
    let again: Vec<_> = sim.clients[a].keyframe_requests[before..]
        .iter()
        .map(|(at, _)| *at - t)
        .collect();
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0] < Duration::from_millis(100), "{again:?}");
}

#[test]
fn a_nack_is_answered_from_the_sfu_send_buffer_not_the_publisher() {
    let mut sim = Sim::new();
    let a = sim.join(1);
    let b = sim.join(1);
    sim.run_for(2 * SECOND);
    let sfu = sim.sfu_addr;
    let b_addr = sim.clients[b].addr;
    let vp8 = sim.clients[b].vp8_pt();
    // Lose, once, the video packets numbered 150 and 151 on the SFU → B leg only.
    let mut lost = Vec::new();
    sim.drop_rule = Some(Box::new(move |d| {
        if d.source != sfu || d.destination != b_addr {
            return false;
        }
        match d.rtp_pt_seq() {
            Some((pt, seq)) if pt == vp8 && (seq == 150 || seq == 151) && !lost.contains(&seq) => {
                lost.push(seq);
                true
            }
            _ => false,
        }
    }));
    sim.run_for(3 * SECOND);
    assert_eq!(sim.dropped, 2, "the rule dropped exactly the two packets");

    // B has every video packet A sent from the start of its stream, with no hole.
    let mut seqs: Vec<u16> = sim.clients[b]
        .received
        .iter()
        .filter(|r| r.origin == a as u8 && r.kind == MediaKind::Video)
        .map(|r| r.publisher_seq)
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    let (first, last) = (seqs[0], seqs[seqs.len() - 1]);
    assert!(
        last - first > 150,
        "the lost packets lie inside what was received"
    );
    assert_eq!(
        seqs.len(),
        usize::from(last - first) + 1,
        "a hole remains in {first}..={last}"
    );

    // The repair came from the SFU (RTX towards B), and A was never asked to resend.
    let rtx_b = sim.clients[b].vp8_rtx_pt().expect("RTX negotiated for VP8");
    let rtx_to_b = sim
        .wire
        .iter()
        .filter(|(_, d)| d.source == sfu && d.destination == b_addr)
        .filter(|(_, d)| d.rtp_pt_seq().is_some_and(|(pt, _)| pt == rtx_b))
        .count();
    assert!(
        rtx_to_b >= 2,
        "the SFU resent the lost packets itself ({rtx_to_b} RTX packets)"
    );
    let a_addr = sim.clients[a].addr;
    let rtx_a = sim.clients[a].vp8_rtx_pt().expect("RTX negotiated for VP8");
    let rtx_from_a = sim
        .wire
        .iter()
        .filter(|(_, d)| d.source == a_addr)
        .filter(|(_, d)| d.rtp_pt_seq().is_some_and(|(pt, _)| pt == rtx_a))
        .count();
    assert_eq!(rtx_from_a, 0, "the publisher never had to retransmit");
}

#[test]
fn a_participant_leaving_mid_stream_disappears_for_the_others() {
    let mut sim = Sim::new();
    let a = sim.join(1);
    let b = sim.join(1);
    let c = sim.join(1);
    sim.run_for(2 * SECOND);
    let offers_before = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, SfuEvent::Offer { .. }))
        .count();

    sim.leave(c);
    let left_at = sim.now;
    sim.run_for(2 * SECOND);

    // No renegotiation: C's slots at A and B fall idle, and each is told so.
    let offers_after = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, SfuEvent::Offer { .. }))
        .count();
    assert_eq!(offers_after, offers_before, "leaving needs no new offer");
    let c_id = sim.clients[c].id;
    for receiver in [a, b] {
        let id = sim.clients[receiver].id;
        let last_mapping = sim
            .events
            .iter()
            .rev()
            .find_map(|(at, e)| match e {
                SfuEvent::Slots { endpoint, slots } if *endpoint == id => Some((*at, slots)),
                _ => None,
            })
            .expect("slot mappings were sent");
        assert!(
            last_mapping.0 >= left_at,
            "{receiver} was told of the change"
        );
        assert!(
            last_mapping.1.iter().all(|s| s.source != Some(c_id)),
            "no slot of {receiver} names C any more: {:?}",
            last_mapping.1
        );
        assert!(
            last_mapping.1.iter().any(|s| s.source.is_none()),
            "C's slots are idle: {:?}",
            last_mapping.1
        );
    }
    for receiver in [a, b] {
        let after = sim.clients[receiver].count_from_since(
            c as u8,
            MediaKind::Video,
            left_at + Duration::from_millis(50),
        );
        assert_eq!(after, 0, "{receiver} still receives C after it left");
        let other = if receiver == a { b } else { a };
        let flowing =
            sim.clients[receiver].count_from_since(other as u8, MediaKind::Video, left_at);
        assert!(
            flowing > 80,
            "{receiver} stopped receiving {other} ({flowing})"
        );
    }
    assert_eq!(sim.core.members(sfu::MeetingId(1)).len(), 2);
}

#[test]
fn a_participant_whose_network_drops_is_removed_after_the_liveness_timeout() {
    let mut sim = Sim::new();
    let a = sim.join(1);
    let b = sim.join(1);
    let c = sim.join(1);
    sim.run_for(2 * SECOND);
    sim.cut_network(c);
    let cut_at = sim.now;
    sim.run_for(7 * SECOND);

    let gone: Vec<_> = sim
        .events
        .iter()
        .filter_map(|(t, e)| match e {
            SfuEvent::Gone { endpoint, reason } => Some((*t, *endpoint, *reason)),
            _ => None,
        })
        .collect();
    assert_eq!(gone.len(), 1, "{gone:?}");
    let (t, endpoint, reason) = gone[0];
    assert_eq!(endpoint, sim.clients[c].id);
    assert_eq!(reason, GoneReason::Silent);
    let after = t - cut_at;
    assert!(
        after >= Duration::from_secs(5) && after < Duration::from_secs(6),
        "removed after {after:?}"
    );
    for (receiver, other) in [(a, b), (b, a)] {
        let flowing = sim.clients[receiver].count_from_since(other as u8, MediaKind::Video, t);
        assert!(flowing > 50, "{receiver} stopped receiving {other}");
    }
}

#[test]
fn garbage_datagrams_are_dropped_and_counted_while_media_flows() {
    let mut sim = Sim::new();
    let a = sim.join(1);
    let b = sim.join(1);
    sim.run_for(2 * SECOND);
    let before = sim.core.counters().dropped_datagrams;
    let stranger = std::net::SocketAddr::from(([10, 9, 9, 9], 4444));
    let known = sim.clients[a].addr;
    let junk: [&[u8]; 5] = [b"", b"\x00", b"hello sfu", &[0x80; 40], &[0xff; 1500]];
    for source in [stranger, known] {
        for j in junk {
            sim.core.handle_datagram(sim.now, source, sim.sfu_addr, j);
        }
    }
    let dropped = sim.core.counters().dropped_datagrams - before;
    assert!(
        dropped >= 5,
        "garbage from an unknown address is dropped and counted ({dropped})"
    );
    let t = sim.now;
    sim.run_for(SECOND);
    assert!(sim.clients[b].count_from_since(a as u8, MediaKind::Video, t) > 40);
    assert!(sim.clients[a].count_from_since(b as u8, MediaKind::Video, t) > 40);
}

#[test]
fn a_malformed_offer_is_refused_and_nothing_changes() {
    let mut sim = Sim::new();
    let a = sim.join(1);
    let err = sim
        .core
        .join(
            sim.now,
            sfu::EndpointId(999),
            sfu::MeetingId(1),
            "v=0\r\nthis is not sdp",
        )
        .expect_err("garbage SDP is refused");
    assert!(matches!(err, sfu::SfuError::BadSdp(_)), "{err:?}");
    let again = sim
        .core
        .join(sim.now, sim.clients[a].id, sfu::MeetingId(1), "v=0");
    assert!(again.is_err());
    assert_eq!(sim.core.members(sfu::MeetingId(1)).len(), 1);
}

#[test]
fn a_receive_only_site_joining_late_gets_everyone_already_publishing() {
    let mut sim = Sim::new();
    let a = sim.join(1);
    let b = sim.join(1);
    sim.run_for(2 * SECOND);
    let viewer = sim.join_receive_only(1);
    let joined = sim.now;
    sim.run_for(3 * SECOND);
    for publisher in [a, b] {
        for kind in [MediaKind::Video, MediaKind::Audio] {
            let got = sim.clients[viewer].count_from_since(publisher as u8, kind, joined);
            assert!(
                got > 80,
                "the viewer got {got} {kind:?} packets from {publisher}"
            );
        }
    }
    // It publishes nothing, so nobody gets anything from it.
    assert_eq!(sim.clients[a].count_from(viewer as u8, MediaKind::Audio), 0);
}

#[test]
fn what_arrives_from_each_site_is_reported_for_roll_call() {
    let mut sim = Sim::new();
    let a = sim.join(1);
    let b = sim.join_audio_only(1);
    let c = sim.join_receive_only(1);
    let d = sim.join_with_layers(1, 3);
    sim.run_for(2 * SECOND);
    let layers_of = |sim: &Sim, i: usize| {
        let id = sim.clients[i].id;
        sim.events.iter().rev().find_map(|(_, e)| match e {
            SfuEvent::Media {
                endpoint,
                video_layers,
                ..
            } if *endpoint == id => Some(*video_layers),
            _ => None,
        })
    };
    assert_eq!(layers_of(&sim, a), Some(1));
    assert_eq!(layers_of(&sim, d), Some(3), "each simulcast layer counts");
    let reports = |sim: &Sim, i: usize| -> Vec<(std::time::Instant, bool, bool)> {
        let id = sim.clients[i].id;
        sim.events
            .iter()
            .filter_map(|(t, e)| match e {
                SfuEvent::Media {
                    endpoint,
                    audio,
                    video_layers,
                } if *endpoint == id => Some((*t, *audio, *video_layers > 0)),
                _ => None,
            })
            .collect()
    };
    let last = |sim: &Sim, i: usize| reports(sim, i).last().map(|(_, a, v)| (*a, *v));
    assert_eq!(last(&sim, a), Some((true, true)));
    assert!(reports(&sim, a).len() <= 2, "{:?}", reports(&sim, a));
    assert_eq!(last(&sim, b), Some((true, false)));
    assert_eq!(last(&sim, c), None, "a receive-only site sends nothing");

    // The camera and microphone stop: after a few seconds, nothing arrives.
    sim.clients[a].publishing = false;
    let stopped = sim.now;
    sim.run_for(5 * SECOND);
    let (t, audio, video) = *reports(&sim, a).last().expect("a report");
    assert_eq!((audio, video), (false, false));
    let after = t - stopped;
    assert!(
        after >= 3 * SECOND && after < 4 * SECOND,
        "reported {after:?} after the stop"
    );
    assert_eq!(last(&sim, b), Some((true, false)), "b still speaks");
}

/// What the SFU measures of one client now.
fn quality_of(sim: &mut Sim, i: usize) -> sfu::quality::EndpointQuality {
    let id = sim.clients[i].id;
    let now = sim.now;
    sim.core
        .quality(now, sfu::MeetingId(1))
        .into_iter()
        .find(|q| q.endpoint == id)
        .expect("measured")
}

#[test]
fn each_site_is_measured_both_ways() {
    let mut sim = Sim::new();
    let a = sim.join(1);
    let b = sim.join(1);
    sim.run_for(3 * SECOND);
    assert!(all_connected(&sim));
    // 5 % of what a sends to the SFU is lost on the way (its retransmissions too).
    let (a_addr, sfu_addr) = (sim.clients[a].addr, sim.sfu_addr);
    let mut state = 7;
    sim.drop_rule = Some(Box::new(move |d| {
        d.source == a_addr && d.destination == sfu_addr && sim::next_random(&mut state) % 100 < 5
    }));
    let (a0, b0) = (quality_of(&mut sim, a), quality_of(&mut sim, b));
    sim.run_for(20 * SECOND);
    let (a1, b1) = (quality_of(&mut sim, a), quality_of(&mut sim, b));

    let period = |q1: &sfu::quality::EndpointQuality, q0: &sfu::quality::EndpointQuality| {
        let video = q1.video_in[0]
            .expect("video")
            .since(&q0.video_in[0].expect("video"));
        let audio = q1
            .audio_in
            .expect("audio")
            .since(&q0.audio_in.expect("audio"));
        (video, audio)
    };
    let (a_video, a_audio) = period(&a1, &a0);
    let (b_video, b_audio) = period(&b1, &b0);

    // a's uplink: about 5 % missing at first; video repaired by retransmission (what is still
    // lost is the few whose retransmission was lost too), audio not (no NACK for Opus).
    let before = a_video.loss_before_repair().expect("expected");
    assert!(
        (0.03..0.07).contains(&before),
        "video missing at first {before}"
    );
    assert!(a_video.repaired > 0, "{a_video:?}");
    let after = a_video.loss().expect("expected");
    assert!(after < 0.01, "video lost after retransmission {after}");
    let audio_loss = a_audio.loss().expect("expected");
    assert!(
        (0.03..0.07).contains(&audio_loss),
        "audio lost {audio_loss}"
    );
    assert!(
        a1.nacks_to > a0.nacks_to,
        "the SFU asked a for retransmissions"
    );
    // b's uplink is clean.
    assert_eq!((b_video.missing_at_first, b_video.lost), (0, 0));
    assert_eq!((b_audio.missing_at_first, b_audio.lost), (0, 0));
    assert_eq!(b1.nacks_to, b0.nacks_to);
    // Frames flow at the publisher's rate without freezes on the clean link.
    assert!(b_video.frames > 20 * 10, "{b_video:?}");
    assert_eq!(b_video.freezes, 0);
    // Both ways: what is sent to each, the RTT, the estimate, the layer each gets, the level.
    for (q0, q1) in [(&a0, &a1), (&b0, &b1)] {
        assert!(q1.sent_packets > q0.sent_packets && q1.sent_bytes > q0.sent_bytes);
        assert!(q1.rtt.is_some(), "{q1:?}");
        assert!(q1.estimate_bps.is_some());
        assert_eq!(q1.layers_sent, vec![0]);
        assert!(q1.audio_level.is_some());
    }
}

/// The `a=ice-ufrag` of an SDP.
fn ice_ufrag(sdp: &str) -> Option<&str> {
    sdp.lines()
        .find_map(|l| l.trim().strip_prefix("a=ice-ufrag:"))
}

#[test]
fn an_ice_restart_offers_new_credentials_and_media_goes_on() {
    let mut sim = Sim::new();
    let a = sim.join(1);
    let b = sim.join(1);
    sim.run_for(2 * SECOND);
    assert!(all_connected(&sim));
    let offers_before = sim
        .events
        .iter()
        .filter(|(_, e)| matches!(e, SfuEvent::Offer { endpoint, .. } if *endpoint == sim.clients[a].id))
        .count();
    sim.core
        .restart_ice(sim.now, sim.clients[a].id)
        .expect("a known endpoint");
    let t = sim.now;
    sim.run_for(2 * SECOND);
    let offers: Vec<&str> = sim
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            SfuEvent::Offer { endpoint, sdp } if *endpoint == sim.clients[a].id => {
                Some(sdp.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(offers.len(), offers_before + 1, "one offer for the restart");
    let restart = offers.last().expect("the restart's offer");
    let new_sfu_ufrag = ice_ufrag(restart).expect("the offer carries ICE credentials");
    let joined_with = ice_ufrag(&sim.clients[a].join_answer).expect("the answer's ufrag");
    assert_ne!(joined_with, new_sfu_ufrag, "new SFU credentials");
    // Both ways, media keeps flowing after the restart.
    assert!(sim.clients[a].count_from_since(b as u8, MediaKind::Video, t + SECOND) > 30);
    assert!(sim.clients[b].count_from_since(a as u8, MediaKind::Video, t + SECOND) > 30);
    assert!(
        sim.core
            .restart_ice(sim.now, sfu::EndpointId(9_999))
            .is_err(),
        "an unknown endpoint is an error, not a panic"
    );
}
