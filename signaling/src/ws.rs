//! One client's live session over WebSocket: parse, check, act, reply.

use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use sfu::{EndpointId, MeetingId, SfuError};
use tokio::sync::mpsc;

use crate::AppState;
use crate::auth::Caller;
use crate::hub::{JoinRequest, OUTBOX_CAPACITY};
use crate::live::{Command, Who};
use crate::protocol::{ClientMsg, FloorAction, MeetingInfo, ServerMsg, validate_name};

/// How often the server pings an idle client.
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// A client silent this long (no message, no pong) is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// What this session has joined.
struct Member {
    id: u64,
    meeting: MeetingInfo,
}

/// Who a session is, from its login (`None`: a guest, who may enter only the demo meeting).
fn who_of(caller: Option<&Caller>) -> Who {
    match caller {
        Some(Caller::Person(p)) => Who {
            site_id: p.site_id,
            person_id: Some(p.id),
            role: Some(p.role),
            terminal: false,
            actor: format!("person:{}", p.username),
        },
        Some(Caller::Site { site_id }) => Who {
            site_id: Some(*site_id),
            terminal: true,
            actor: format!("site:{site_id}"),
            ..Who::default()
        },
        None => Who {
            actor: "guest".into(),
            ..Who::default()
        },
    }
}

/// Runs one WebSocket session to its end.
pub async fn session(socket: WebSocket, state: AppState, caller: Option<Caller>) {
    let who = who_of(caller.as_ref());
    // Roll call shows a site as connected while any session of it is.
    let site = who.site_id;
    if let Some(site) = site {
        state.hub.online(site, true);
    }
    // A room terminal takes technicians' commands whether or not it is in a meeting.
    static NEXT_KEY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let key = NEXT_KEY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (command_tx, mut commands) = mpsc::channel::<ServerMsg>(16);
    let terminal_site = if who.terminal { site } else { None };
    if let Some(site) = terminal_site {
        state.hub.terminal(site, key, Some(command_tx));
    } else {
        drop(command_tx);
    }
    // A dashboard's messages (roll call, quality) once it watches a meeting.
    let (watch_tx, mut watched) = mpsc::channel::<ServerMsg>(64);
    let (mut sink, mut stream) = socket.split();
    let (outbox_tx, mut outbox) = mpsc::channel::<ServerMsg>(OUTBOX_CAPACITY);
    // Handed to the hub on join; the hub dropping it ends the session.
    let mut outbox_tx = Some(outbox_tx);
    let mut member: Option<Member> = None;
    let mut ping = tokio::time::interval(PING_INTERVAL);
    let mut last_seen = Instant::now();

    loop {
        let reply = tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    last_seen = Instant::now();
                    let watch = Watching { key, tx: &watch_tx };
                    handle_text(&state, &who, text.as_str(), &mut member, &mut outbox_tx, watch).await
                }
                Some(Ok(Message::Binary(_))) => {
                    last_seen = Instant::now();
                    let e = crate::protocol::ProtocolError::Binary;
                    vec![ServerMsg::error(e.code(), e.to_string())]
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    last_seen = Instant::now();
                    continue;
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "WebSocket read failed");
                    break;
                }
            },
            Some(command) = commands.recv() => vec![command],
            Some(msg) = watched.recv() => vec![msg],
            queued = outbox.recv(), if outbox_tx.is_none() => match queued {
                Some(msg) => vec![msg],
                // The hub removed this participant (media lost, too slow).
                None => break,
            },
            _ = ping.tick() => {
                if last_seen.elapsed() > IDLE_TIMEOUT {
                    tracing::debug!("client idle too long: closing");
                    break;
                }
                if sink.send(Message::Ping(Default::default())).await.is_err() {
                    break;
                }
                continue;
            }
        };
        for msg in reply {
            if sink
                .send(Message::Text(msg.to_json().into()))
                .await
                .is_err()
            {
                break;
            }
        }
    }
    if let Some(m) = member {
        state.hub.leave(m.id);
    }
    state.hub.watch(key, None);
    if let Some(site) = site {
        state.hub.online(site, false);
    }
    if let Some(site) = terminal_site {
        state.hub.terminal(site, key, None);
    }
    let _ = sink.close().await;
}

/// This session's key and the channel a watched meeting's messages come by.
struct Watching<'a> {
    key: u64,
    tx: &'a mpsc::Sender<ServerMsg>,
}

async fn handle_text(
    state: &AppState,
    who: &Who,
    text: &str,
    member: &mut Option<Member>,
    outbox_tx: &mut Option<mpsc::Sender<ServerMsg>>,
    watch: Watching<'_>,
) -> Vec<ServerMsg> {
    let msg = match ClientMsg::parse(text) {
        Ok(m) => m,
        Err(e) => return vec![ServerMsg::error(e.code(), e.to_string())],
    };
    match msg {
        ClientMsg::Join { meeting, name } => {
            if member.is_some() {
                return vec![ServerMsg::error(
                    "already_joined",
                    "this session is already in a meeting",
                )];
            }
            let name = match validate_name(&name) {
                Ok(n) => n,
                Err(why) => return vec![ServerMsg::error("invalid_name", why)],
            };
            let info = match state.db.meeting(meeting).await {
                Ok(Some(info)) => info,
                Ok(None) => {
                    return vec![ServerMsg::error(
                        "meeting_not_found",
                        format!("there is no meeting with id {meeting}"),
                    )];
                }
                Err(e) => {
                    tracing::error!(error = %e, "meeting lookup failed");
                    return vec![ServerMsg::error(
                        "internal",
                        "the meeting could not be looked up",
                    )];
                }
            };
            // A scheduled meeting is entered only while it is open (roll call, in progress).
            let meeting_state = match crate::meetings::load(state, meeting).await {
                Ok(Some(m)) => m.state,
                Ok(None) => crate::lifecycle::State::Ended,
                Err(e) => return vec![ServerMsg::error(e.code, e.message)],
            };
            if !meeting_state.is_open() {
                return vec![ServerMsg::error(
                    "meeting_not_open",
                    format!(
                        "the meeting is {}: it can be entered from roll call until it ends",
                        meeting_state.as_str()
                    ),
                )];
            }
            let setup = match crate::attendance::setup(&state.db, meeting).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "meeting set-up failed");
                    return vec![ServerMsg::error(
                        "internal",
                        "the meeting could not be read",
                    )];
                }
            };
            let Some(outbox) = outbox_tx.clone() else {
                return vec![ServerMsg::error(
                    "already_joined",
                    "this session already joined once",
                )];
            };
            let request = JoinRequest {
                meeting: info.clone(),
                name,
                who: who.clone(),
                setup,
                outbox,
            };
            let joined = match state.hub.join(request).await {
                Some(Ok(joined)) => joined,
                Some(Err(refusal)) => {
                    return vec![ServerMsg::error(refusal.code(), refusal.to_string())];
                }
                None => return vec![ServerMsg::error("internal", "the server is shutting down")],
            };
            // The hub holds the sending side now; this session reads the outbox.
            *outbox_tx = None;
            *member = Some(Member {
                id: joined.id,
                meeting: info.clone(),
            });
            vec![ServerMsg::Welcome {
                participant_id: joined.id,
                meeting: info,
                participants: joined.others,
                ice_servers: state.ice_servers.to_vec(),
            }]
        }
        ClientMsg::Offer { sdp } => {
            let Some(m) = member else {
                return vec![not_joined()];
            };
            match state
                .sfu
                .join(EndpointId(m.id), MeetingId(m.meeting.id), sdp)
                .await
            {
                Ok(sdp) => vec![ServerMsg::Answer { sdp }],
                Err(e) => vec![sfu_error(&e)],
            }
        }
        ClientMsg::Answer { sdp } => {
            let Some(m) = member else {
                return vec![not_joined()];
            };
            match state.sfu.answer(EndpointId(m.id), sdp).await {
                Ok(()) => vec![],
                Err(e) => vec![sfu_error(&e)],
            }
        }
        ClientMsg::View { tiles } => {
            let Some(m) = member else {
                return vec![not_joined()];
            };
            let view: Vec<(EndpointId, u32)> = tiles
                .iter()
                .map(|t| (EndpointId(t.participant), t.height))
                .collect();
            match state.sfu.set_view(EndpointId(m.id), view).await {
                Ok(()) => vec![],
                Err(e) => vec![sfu_error(&e)],
            }
        }
        ClientMsg::Candidate { candidate } => {
            let Some(m) = member else {
                return vec![not_joined()];
            };
            match state.sfu.candidate(EndpointId(m.id), candidate).await {
                Ok(()) => vec![],
                Err(e) => vec![sfu_error(&e)],
            }
        }
        ClientMsg::IceRestart => {
            let Some(m) = member else {
                return vec![not_joined()];
            };
            match state.sfu.restart_ice(EndpointId(m.id)).await {
                Ok(()) => vec![],
                Err(e) => vec![sfu_error(&e)],
            }
        }
        ClientMsg::Leave => {
            if let Some(m) = member.take() {
                state.hub.leave(m.id);
            }
            vec![]
        }
        ClientMsg::Floor { action, site } => {
            let command = match (action, site) {
                (FloorAction::Request, _) => Command::Request,
                (FloorAction::Withdraw, _) => Command::Withdraw,
                (FloorAction::Revoke, _) => Command::Revoke,
                (FloorAction::Grant, Some(site)) => Command::Grant(site),
                (FloorAction::Refuse, Some(site)) => Command::Refuse(site),
                // The parser refuses grant and refuse without a site.
                (FloorAction::Grant | FloorAction::Refuse, None) => return vec![],
            };
            moderate(state, member.as_ref(), command).await
        }
        ClientMsg::Mute { site, muted } => {
            moderate(state, member.as_ref(), Command::Mute(site, muted)).await
        }
        ClientMsg::MuteAll { muted } => {
            moderate(state, member.as_ref(), Command::MuteAll(muted)).await
        }
        ClientMsg::Lock { locked } => moderate(state, member.as_ref(), Command::Lock(locked)).await,
        ClientMsg::Spotlight { site } => {
            moderate(state, member.as_ref(), Command::Spotlight(site)).await
        }
        ClientMsg::Share { on } => moderate(state, member.as_ref(), Command::Share(on)).await,
        ClientMsg::Watch { meeting } => watch_meeting(state, who, meeting, watch).await,
        ClientMsg::ClientStats(stats) => match member {
            Some(m) => {
                state.hub.client_stats(m.id, stats);
                vec![]
            }
            None => vec![not_joined()],
        },
        ClientMsg::Health(report) => match (who.terminal, who.site_id) {
            (true, Some(site)) => {
                state.hub.health(site, report);
                vec![]
            }
            _ => vec![ServerMsg::error(
                "not_a_terminal",
                "only a room terminal reports health",
            )],
        },
    }
}

/// A dashboard follows `meeting`: the roll call and the latest quality now, then as they come.
async fn watch_meeting(
    state: &AppState,
    who: &Who,
    meeting: i64,
    watch: Watching<'_>,
) -> Vec<ServerMsg> {
    use crate::auth::Role;
    if !matches!(
        who.role,
        Some(Role::Administrator | Role::Technician | Role::Chair)
    ) {
        return vec![ServerMsg::error(
            "forbidden",
            "only administrators, technicians and chairs follow a meeting's quality",
        )];
    }
    match state.db.meeting(meeting).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return vec![ServerMsg::error(
                "unknown_meeting",
                format!("there is no meeting {meeting}"),
            )];
        }
        Err(e) => {
            tracing::error!(error = %e, "reading a meeting failed");
            return vec![ServerMsg::error(
                "internal",
                "the meeting could not be read",
            )];
        }
    }
    let roll_call = match crate::attendance::setup(&state.db, meeting).await {
        Ok(setup) => state
            .hub
            .roll_call(meeting, setup)
            .await
            .unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "reading a meeting's invitations failed");
            Vec::new()
        }
    };
    state
        .hub
        .watch(watch.key, Some((meeting, watch.tx.clone())));
    let (sites, alerts) = {
        let monitor = state.monitor.lock().unwrap_or_else(|e| e.into_inner());
        let sites = monitor
            .latest(meeting)
            .into_iter()
            .map(|(site, sample)| crate::protocol::SiteSample { site, sample })
            .collect();
        (sites, monitor.firing(meeting))
    };
    vec![
        ServerMsg::RollCall { sites: roll_call },
        ServerMsg::Quality { sites, alerts },
    ]
}

async fn moderate(state: &AppState, member: Option<&Member>, command: Command) -> Vec<ServerMsg> {
    let Some(m) = member else {
        return vec![not_joined()];
    };
    match state.hub.command(m.id, command).await {
        Some(Ok(())) => vec![],
        Some(Err(refusal)) => vec![ServerMsg::error(refusal.code(), refusal.to_string())],
        None => vec![ServerMsg::error("internal", "the server is shutting down")],
    }
}

fn not_joined() -> ServerMsg {
    ServerMsg::error("not_joined", "join a meeting first")
}

fn sfu_error(e: &SfuError) -> ServerMsg {
    let code = match e {
        SfuError::BadSdp(_) => "bad_sdp",
        SfuError::Negotiation(_) => "negotiation_failed",
        SfuError::BadCandidate(_) => "bad_candidate",
        SfuError::UnknownEndpoint => "not_connected",
        SfuError::AlreadyJoined => "offer_refused",
        SfuError::NoOfferPending => "no_offer_pending",
        SfuError::TooManyViewEntries(_) => "view_too_large",
        SfuError::Unavailable => "media_unavailable",
    };
    ServerMsg::error(code, e.to_string())
}
