//! Province-sized meetings: 213 sites in one simulated meeting, in the mission's two shapes.
//!
//! - **Broadcast**: the chair and the floor holder speak to 211 commune and district rooms in
//!   floor mode; the chair watches a gallery of sites.
//! - **Working**: 30 sites with cameras, 183 audio-only, last-N 9 video and loudest-3 audio;
//!   the speaker changes halfway.
//!
//! The network is seeded: a few sites lose packets, every packet gets random jitter, and a few
//! sites sit behind thin links. The assertions are about what each receiver gets: which
//! sources, which layers, on how many slots, without flapping, and how many keyframe requests
//! reach a publisher.

mod sim;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sfu::{AudioMode, EndpointId, MediaPolicy, MeetingId, SfuEvent};
use str0m::media::MediaKind;

use sim::{Received, Sim, seeded_loss};

const SECOND: Duration = Duration::from_secs(1);
const MEETING: MeetingId = MeetingId(1);
const SITES: usize = 213;

/// A simulator set up for a big meeting: no wire log, 25 fps video, 0–3 ms of jitter.
fn big_sim() -> Sim {
    let mut sim = Sim::new();
    sim.keep_wire = false;
    sim.video_every = 2;
    sim.jitter = Duration::from_millis(3);
    sim
}

/// What `receiver` got of `kind` since `t`.
fn received_since(sim: &Sim, receiver: usize, kind: MediaKind, t: Instant) -> Vec<Received> {
    sim.clients[receiver]
        .received
        .iter()
        .filter(|r| r.kind == kind && r.at > t)
        .copied()
        .collect()
}

/// The sources (client indexes) `receiver` got `kind` from since `t`.
fn sources_since(sim: &Sim, receiver: usize, kind: MediaKind, t: Instant) -> BTreeSet<usize> {
    received_since(sim, receiver, kind, t)
        .iter()
        .map(|r| usize::from(r.origin))
        .collect()
}

/// Distinct streams (SSRCs) `receiver` ever got of `kind`: its slots in use.
fn streams(sim: &Sim, receiver: usize, kind: MediaKind) -> usize {
    let ssrcs: BTreeSet<_> = sim.clients[receiver]
        .received
        .iter()
        .filter(|r| r.kind == kind)
        .map(|r| r.ssrc)
        .collect();
    ssrcs.len()
}

/// The layers `receiver` got of `origin`'s video since `t`, and how often it changed layer.
fn layers_of(sim: &Sim, receiver: usize, origin: usize, t: Instant) -> (BTreeSet<u8>, usize) {
    let mut got: Vec<Received> = received_since(sim, receiver, MediaKind::Video, t)
        .into_iter()
        .filter(|r| usize::from(r.origin) == origin)
        .collect();
    // In stream order: a retransmission of a packet sent before a switch arrives after it,
    // and is not a switch back.
    got.sort_by_key(|r| r.seq);
    let got: Vec<u8> = got.iter().map(|r| r.layer).collect();
    let switches = got.windows(2).filter(|w| w[0] != w[1]).count();
    (got.into_iter().collect(), switches)
}

/// The slots last announced to `receiver`.
fn last_slots(sim: &Sim, receiver: usize) -> Vec<sfu::SlotInfo> {
    let id = sim.clients[receiver].id;
    sim.events
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            SfuEvent::Slots { endpoint, slots } if *endpoint == id => Some(slots.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[test]
fn broadcast_to_213_sites_in_floor_mode() {
    let mut sim = big_sim();
    let chair = sim.join_with_layers(MEETING.0, 3);
    let holder = sim.join_with_layers(MEETING.0, 3);
    let sites: Vec<usize> = (2..SITES).map(|_| sim.join(MEETING.0)).collect();
    let chair_id = sim.clients[chair].id;
    let holder_id = sim.clients[holder].id;
    sim.core.set_media_policy(
        sim.now,
        MEETING,
        MediaPolicy {
            mode: AudioMode::Floor,
            chair: Some(chair_id),
            floor_holder: Some(holder_id),
            ..MediaPolicy::default()
        },
    );
    // The chair and the floor holder speak; commune rooms are noisy, some loudly so: floor
    // mode must keep every one of them out.
    sim.clients[chair].audio_level = -20;
    sim.clients[holder].audio_level = -30;
    let mut state = 0x0213;
    for &s in &sites {
        sim.clients[s].audio_level = -((sim::next_random(&mut state) % 100) as i8) - 10;
    }
    // Each site shows the chair large and the floor holder half size; the chair shows the
    // floor holder and a gallery of nine sites.
    let gallery: Vec<usize> = sites[..9].to_vec();
    for &s in &sites {
        let view = [(chair_id, 720), (holder_id, 360)];
        sim.core
            .set_view(sim.now, sim.clients[s].id, &view)
            .expect("view");
    }
    let mut chair_view = vec![(holder_id, 360)];
    chair_view.extend(gallery.iter().map(|g| (sim.clients[*g].id, 180)));
    sim.core
        .set_view(sim.now, chair_id, &chair_view)
        .expect("view");
    sim.core
        .set_view(sim.now, holder_id, &[(chair_id, 720)])
        .expect("view");
    // Ten sites lose 2% of what is sent to them; five sit behind a link too thin for the
    // chair's top layer.
    let lossy: Vec<usize> = sites[20..30].to_vec();
    let thin: Vec<usize> = sites[40..45].to_vec();
    sim.drop_rule = Some(seeded_loss(
        lossy.iter().map(|i| sim.clients[*i].addr).collect(),
        2,
        7,
    ));
    for &s in &thin {
        sim.cap_downlink(s, 300_000);
    }

    sim.run_for(6 * SECOND);
    let steady = sim.now;
    sim.run_for(3 * SECOND);

    // Every site but the thin ones gets the chair and the floor holder, both flowing, and
    // nothing else; sites on clean links get exactly the chair's top layer and the floor
    // holder's middle one. On lossy links the estimator may hold back (loss keeps it from
    // growing, and a burst of it can cut the estimate): there, no flapping, and most of them
    // keep at least the chair's middle layer throughout. (The runs are not bit-for-bit
    // repeatable: str0m draws SSRCs and DTLS keys at random, so the seeded loss falls on
    // other packets each run.)
    let mut starved = Vec::new();
    let mut lossy_low = Vec::new();
    for &s in sites.iter().filter(|s| !thin.contains(s)) {
        let video = sources_since(&sim, s, MediaKind::Video, steady);
        assert_eq!(video, BTreeSet::from([chair, holder]), "site {s} sees");
        let (chair_layers, chair_switches) = layers_of(&sim, s, chair, steady);
        let (holder_layers, holder_switches) = layers_of(&sim, s, holder, steady);
        if lossy.contains(&s) {
            if chair_layers.iter().any(|l| *l < 1) {
                lossy_low.push((s, chair_layers));
            }
            assert!(
                chair_switches + holder_switches <= 2,
                "lossy site {s} flaps: {chair_switches} + {holder_switches} switches"
            );
        } else {
            assert_eq!(chair_layers, BTreeSet::from([2]), "site {s}: chair layer");
            assert_eq!(
                holder_layers,
                BTreeSet::from([1]),
                "site {s}: floor holder layer"
            );
        }
        let frames = received_since(&sim, s, MediaKind::Video, steady)
            .iter()
            .filter(|r| usize::from(r.origin) == chair)
            .count();
        // 3 s at 25 fps, one packet a frame; lossy sites lose some.
        if frames < 60 {
            starved.push((s, frames));
        }
    }
    assert!(
        starved.is_empty(),
        "sites short of chair frames: {starved:?}"
    );
    assert!(
        lossy_low.len() <= 2,
        "lossy sites that fell to the chair's lowest layer: {lossy_low:?}"
    );
    for &s in &sites {
        assert_eq!(
            sources_since(&sim, s, MediaKind::Audio, steady),
            BTreeSet::from([chair, holder]),
            "site {s} hears only the chair and the floor holder"
        );
        assert!(
            streams(&sim, s, MediaKind::Video) <= 2,
            "site {s}: video slots"
        );
        assert!(
            streams(&sim, s, MediaKind::Audio) <= 2,
            "site {s}: audio slots"
        );
        assert!(last_slots(&sim, s).len() <= 4, "site {s}: m-lines");
    }

    // The chair sees the floor holder and exactly its gallery.
    let mut expected: BTreeSet<usize> = gallery.iter().copied().collect();
    expected.insert(holder);
    assert_eq!(
        sources_since(&sim, chair, MediaKind::Video, steady),
        expected
    );

    // Thin links still get the floor's video, below the chair's top layer, and do not flap:
    // over three seconds at most three layer changes in all (an upgrade that the estimate
    // takes back, and one more try after the doubled hold), not a change at every keyframe.
    for &s in &thin {
        let (layers, switches) = layers_of(&sim, s, chair, steady);
        let (holder_layers, holder_switches) = layers_of(&sim, s, holder, steady);
        assert!(
            !layers.is_empty() || !holder_layers.is_empty(),
            "thin site {s} gets no video of the floor"
        );
        assert!(
            layers.iter().all(|l| *l < 2),
            "thin site {s} gets chair layers {layers:?}"
        );
        assert!(
            switches + holder_switches <= 3,
            "thin site {s} switched {switches} + {holder_switches} times"
        );
    }

    // 211 receivers all needed the chair's keyframes at the start; the chair was asked at
    // most twice a second per layer, not once per receiver.
    let requests = &sim.clients[chair].keyframe_requests;
    let elapsed = sim.elapsed().as_secs_f64();
    let bound = (3.0 * (elapsed / 0.5 + 1.0)) as usize;
    assert!(!requests.is_empty(), "keyframes were asked for");
    assert!(
        requests.len() <= bound,
        "{} keyframe requests reached the chair in {elapsed:.0} s (at most {bound})",
        requests.len()
    );
}

#[test]
fn working_meeting_of_213_with_last_9_video_and_loudest_3_audio() {
    let mut sim = big_sim();
    let cameras: Vec<usize> = (0..30)
        .map(|_| sim.join_with_layers(MEETING.0, 3))
        .collect();
    let audio_only: Vec<usize> = (30..SITES)
        .map(|_| sim.join_audio_only(MEETING.0))
        .collect();
    sim.core.set_media_policy(
        sim.now,
        MEETING,
        MediaPolicy {
            mode: AudioMode::Open,
            loudest_n: 3,
            last_n: 9,
            ..MediaPolicy::default()
        },
    );
    // Everyone shows every camera as a small tile; last-N decides which nine arrive.
    let ids: Vec<EndpointId> = cameras.iter().map(|c| sim.clients[*c].id).collect();
    for i in 0..SITES {
        let me = sim.clients[i].id;
        let view: Vec<(EndpointId, u32)> = ids
            .iter()
            .filter(|id| **id != me)
            .map(|id| (*id, 180))
            .collect();
        sim.core.set_view(sim.now, me, &view).expect("view");
    }
    // Three speakers, two of them beyond the first nine cameras; one noisy room; silence
    // elsewhere, suppressed (Opus DTX, as the SFU asks: a packet every 400 ms).
    let (a, b, c) = (cameras[3], cameras[15], cameras[22]);
    for i in 0..SITES {
        sim.clients[i].audio_level = -127;
        sim.clients[i].dtx = true;
    }
    sim.clients[a].audio_level = -15;
    sim.clients[b].audio_level = -22;
    sim.clients[c].audio_level = -28;
    sim.clients[audio_only[50]].audio_level = -55;
    let lossy: Vec<usize> = audio_only[100..110].to_vec();
    sim.drop_rule = Some(seeded_loss(
        lossy.iter().map(|i| sim.clients[*i].addr).collect(),
        2,
        11,
    ));

    sim.run_for(5 * SECOND);
    let steady = sim.now;
    sim.run_for(2 * SECOND);

    let speakers = BTreeSet::from([a, b, c]);
    for i in 0..SITES {
        let video = sources_since(&sim, i, MediaKind::Video, steady);
        assert_eq!(video.len(), 9, "site {i} sees nine cameras: {video:?}");
        for s in speakers.iter().filter(|s| **s != i) {
            assert!(video.contains(s), "site {i} sees speaker {s}: {video:?}");
        }
        let audio = sources_since(&sim, i, MediaKind::Audio, steady);
        let expected: BTreeSet<usize> = speakers.iter().copied().filter(|s| *s != i).collect();
        assert_eq!(audio, expected, "site {i} hears the loudest three");
        assert!(
            streams(&sim, i, MediaKind::Video) <= 9,
            "site {i}: video slots"
        );
        assert!(
            streams(&sim, i, MediaKind::Audio) <= 4,
            "site {i}: audio slots"
        );
        let (layers, _) = layers_of(&sim, i, a, steady);
        if i != a {
            assert_eq!(
                layers,
                BTreeSet::from([0]),
                "site {i}: small tiles, small layer"
            );
        }
    }
    let announced = |sim: &Sim| {
        sim.events
            .iter()
            .filter_map(|(_, e)| match e {
                SfuEvent::Speakers { dominant, .. } => Some(*dominant),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        announced(&sim),
        vec![sim.clients[a].id],
        "one dominant speaker"
    );

    // A camera site that nobody sees yet takes over, clearly louder; then the old speaker
    // falls silent. The new speaker is announced once, and everyone sees and hears them.
    let d = cameras[27];
    sim.clients[d].audio_level = -5;
    sim.run_for(SECOND);
    sim.clients[a].audio_level = -127;
    sim.run_for(3 * SECOND);
    let after = sim.now;
    sim.run_for(2 * SECOND);
    assert_eq!(
        announced(&sim),
        vec![sim.clients[a].id, sim.clients[d].id],
        "one announcement each, no flapping"
    );
    for i in (0..SITES).filter(|i| *i != d) {
        let video = sources_since(&sim, i, MediaKind::Video, after);
        assert!(
            video.contains(&d),
            "site {i} sees the new speaker: {video:?}"
        );
        assert_eq!(
            video.len(),
            9,
            "site {i} still sees nine cameras: {video:?}"
        );
        let audio = sources_since(&sim, i, MediaKind::Audio, after);
        assert!(
            audio.contains(&d),
            "site {i} hears the new speaker: {audio:?}"
        );
        assert!(
            !audio.contains(&a),
            "site {i} no longer hears the silent one"
        );
        assert!(
            streams(&sim, i, MediaKind::Video) <= 9,
            "site {i}: video slots"
        );
    }

    // Nobody shows any camera larger than a small tile, so after the hold every camera site
    // was asked, once, to send only its lowest layer: the uplinks of the 30 rooms and the
    // SFU's intake shrink to that.
    for &camera in &cameras {
        let id = sim.clients[camera].id;
        let asked: Vec<u8> = sim
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                SfuEvent::SendLayers {
                    endpoint, layers, ..
                } if *endpoint == id => Some(*layers),
                _ => None,
            })
            .collect();
        assert_eq!(asked, vec![1], "camera {camera} was asked for");
    }
}
