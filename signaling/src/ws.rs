//! One client's live session over WebSocket: parse, check, act, reply.

use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use sfu::{EndpointId, MeetingId, SfuError};
use tokio::sync::mpsc;

use crate::AppState;
use crate::hub::OUTBOX_CAPACITY;
use crate::protocol::{ClientMsg, MeetingInfo, ServerMsg, validate_name};

/// How often the server pings an idle client.
const PING_INTERVAL: Duration = Duration::from_secs(5);
/// A client silent this long (no message, no pong) is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// What this session has joined.
struct Member {
    id: u64,
    meeting: MeetingInfo,
}

/// Runs one WebSocket session to its end.
pub async fn session(socket: WebSocket, state: AppState) {
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
                    handle_text(&state, text.as_str(), &mut member, &mut outbox_tx).await
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
    let _ = sink.close().await;
}

async fn handle_text(
    state: &AppState,
    text: &str,
    member: &mut Option<Member>,
    outbox_tx: &mut Option<mpsc::Sender<ServerMsg>>,
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
            let Some(outbox) = outbox_tx.take() else {
                return vec![ServerMsg::error(
                    "already_joined",
                    "this session already joined once",
                )];
            };
            let Some(joined) = state.hub.join(info.clone(), name, outbox).await else {
                return vec![ServerMsg::error("internal", "the server is shutting down")];
            };
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
        ClientMsg::Leave => {
            if let Some(m) = member.take() {
                state.hub.leave(m.id);
            }
            vec![]
        }
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
