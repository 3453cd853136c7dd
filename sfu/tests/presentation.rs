//! Document and screen sharing: a publisher's second video track is its presentation. It is
//! forwarded to everyone, first and whatever their view or last-N says, while signaling names
//! that publisher the presenter, and not otherwise. Simulated meetings with real str0m clients.

mod sim;

use std::time::{Duration, Instant};

use sfu::{EndpointId, MediaPolicy, MeetingId, SfuEvent, SlotKind};
use str0m::media::MediaKind;

use sim::{CONTENT_LAYER, Sim};

const SECOND: Duration = Duration::from_secs(1);
const MEETING: MeetingId = MeetingId(1);

/// Video packets `receiver` got from `origin` after `t`: of its presentation (`content`) or of
/// its camera.
fn video_from(sim: &Sim, receiver: usize, origin: usize, t: Instant, content: bool) -> usize {
    sim.clients[receiver]
        .received
        .iter()
        .filter(|r| {
            r.origin as usize == origin
                && r.kind == MediaKind::Video
                && (r.layer == CONTENT_LAYER) == content
                && r.at > t
        })
        .count()
}

fn content_from(sim: &Sim, receiver: usize, origin: usize, t: Instant) -> usize {
    video_from(sim, receiver, origin, t, true)
}

fn camera_from(sim: &Sim, receiver: usize, origin: usize, t: Instant) -> usize {
    video_from(sim, receiver, origin, t, false)
}

/// The latest slot mapping the SFU announced to `id`: (source, content) of each video slot.
fn video_slots(sim: &Sim, id: EndpointId) -> Vec<(Option<EndpointId>, bool)> {
    sim.events
        .iter()
        .rev()
        .find_map(|(_, e)| match e {
            SfuEvent::Slots { endpoint, slots } if *endpoint == id => Some(slots),
            _ => None,
        })
        .map(|slots| {
            slots
                .iter()
                .filter(|s| s.kind == SlotKind::Video)
                .map(|s| (s.source, s.content))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn the_presenters_document_reaches_everyone_only_while_it_presents() {
    let mut sim = Sim::new();
    let chair = sim.join(MEETING.0);
    let presenter = sim.join_with_content(MEETING.0);
    let gallery: Vec<usize> = (0..4).map(|_| sim.join(MEETING.0)).collect();
    let (chair_id, presenter_id) = (sim.clients[chair].id, sim.clients[presenter].id);
    // Last-1: the galleries see the chair only, not the presenter's camera.
    let policy = MediaPolicy {
        chair: Some(chair_id),
        last_n: 1,
        ..MediaPolicy::default()
    };
    sim.core.set_media_policy(sim.now, MEETING, policy.clone());
    // One receiver shows only the chair: its view does not name the presenter at all.
    let narrow = gallery[0];
    sim.core
        .set_view(sim.now, sim.clients[narrow].id, &[(chair_id, 360)])
        .expect("view");
    // The presenter's browser sends its document before anyone made it the presenter.
    sim.clients[presenter].presenting = true;
    sim.run_for(2 * SECOND);
    let t = sim.now;
    sim.run_for(SECOND);
    for &r in gallery.iter().chain([&chair]) {
        assert_eq!(
            content_from(&sim, r, presenter, t),
            0,
            "client {r}: no presentation before signaling says who presents"
        );
    }

    sim.core.set_media_policy(
        sim.now,
        MEETING,
        MediaPolicy {
            presenter: Some(presenter_id),
            ..policy.clone()
        },
    );
    sim.run_for(2 * SECOND);
    let t = sim.now;
    sim.run_for(SECOND);
    for &r in gallery.iter().chain([&chair]) {
        let got = content_from(&sim, r, presenter, t);
        assert!(
            got >= 40,
            "client {r} got {got} presentation packets in 1 s"
        );
        let slots = video_slots(&sim, sim.clients[r].id);
        assert!(
            slots.contains(&(Some(presenter_id), true)),
            "client {r}: a slot is announced as the presenter's content: {slots:?}"
        );
    }
    // The presentation is not the presenter's camera: last-1 still keeps that from the gallery.
    assert_eq!(camera_from(&sim, gallery[1], presenter, t), 0);
    assert!(
        !video_slots(&sim, sim.clients[gallery[1]].id).contains(&(Some(presenter_id), false)),
        "no camera slot of the presenter under last-1"
    );
    // The narrow view still gets the chair's camera beside the presentation.
    assert!(camera_from(&sim, narrow, chair, t) > 0);

    // Presenting ends: the presentation stops reaching anyone, though the browser still sends.
    sim.core.set_media_policy(sim.now, MEETING, policy);
    sim.run_for(SECOND);
    let t = sim.now;
    sim.run_for(SECOND);
    for &r in gallery.iter().chain([&chair]) {
        assert_eq!(content_from(&sim, r, presenter, t), 0, "client {r}");
        assert!(
            !video_slots(&sim, sim.clients[r].id)
                .iter()
                .any(|(_, content)| *content),
            "client {r}: no slot carries a presentation"
        );
    }
}

#[test]
fn a_spotlighted_site_is_seen_by_everyone_despite_last_n() {
    let mut sim = Sim::new();
    let chair = sim.join(MEETING.0);
    let others: Vec<usize> = (0..4).map(|_| sim.join(MEETING.0)).collect();
    let chair_id = sim.clients[chair].id;
    let policy = MediaPolicy {
        chair: Some(chair_id),
        last_n: 1,
        ..MediaPolicy::default()
    };
    sim.core.set_media_policy(sim.now, MEETING, policy.clone());
    sim.run_for(2 * SECOND);
    let spot = others[3];
    let t = sim.now;
    sim.run_for(SECOND);
    assert_eq!(
        camera_from(&sim, others[0], spot, t),
        0,
        "last-1 keeps the last joiner out"
    );

    sim.core.set_media_policy(
        sim.now,
        MEETING,
        MediaPolicy {
            spotlight: Some(sim.clients[spot].id),
            ..policy
        },
    );
    sim.run_for(2 * SECOND);
    let t = sim.now;
    sim.run_for(SECOND);
    for &r in others.iter().filter(|r| **r != spot).chain([&chair]) {
        let got = camera_from(&sim, r, spot, t);
        assert!(
            got >= 40,
            "client {r} got {got} packets of the spotlighted site"
        );
    }
}
