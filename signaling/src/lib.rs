//! The control plane of the meeting-room bridge.
//!
//! Signaling owns who is where: meetings (in the database), the participants of each meeting
//! right now (the [`hub`]), and the live session protocol ([`protocol`]) over which clients
//! join and exchange SDP with the SFU. It relays SDP between a client and the SFU but never
//! touches media; the SFU ([`sfu`]) never sees names or accounts.
//!
//! [`start`] wires the parts: the database, the SFU task, the hub and the HTTP routes.

pub mod attendance;
pub mod audit;
pub mod auth;
pub mod clock;
pub mod config;
pub mod db;
pub mod http;
pub mod hub;
pub mod ical;
pub mod lifecycle;
pub mod live;
pub mod meetings;
pub mod moderation;
pub mod monitor;
pub mod openapi;
pub mod protocol;
pub mod quality;
pub mod reports;
pub mod sites;
pub mod stats;
pub mod tls;
pub mod watch;
mod ws;

use std::path::PathBuf;
use std::sync::Arc;

use sfu::{SfuConfig, SfuHandle};

pub use crate::config::Config;
use crate::db::Db;
use crate::hub::Hub;
use crate::protocol::IceServer;

/// What every request handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Storage.
    pub db: Db,
    /// Who is in which meeting.
    pub hub: Hub,
    /// The media plane.
    pub sfu: SfuHandle,
    /// ICE servers handed to clients.
    pub ice_servers: Arc<Vec<IceServer>>,
    /// The built web client.
    pub web_root: PathBuf,
    /// The moderation API's bearer token, if it is on.
    pub admin_token: Option<Arc<str>>,
    /// Each site's quality in the live meetings (fed by [`watch`]).
    pub monitor: Arc<std::sync::Mutex<monitor::Monitor>>,
    /// The test hooks are on (`--test-hooks`).
    pub test_hooks: bool,
    /// What a site's trip to a meeting costs, VND (`--trip-cost`).
    pub trip_cost_vnd: u64,
}

/// Errors while starting.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data folder could not be created.
    #[error("cannot create the data folder {path}: {source}")]
    DataDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database failed.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// The first administrator account could not be created.
    #[error("cannot create the first administrator: {0}")]
    Admin(String),
    /// The media port could not be bound.
    #[error("cannot bind the media port {addr}: {source}")]
    Media {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Opens the database, starts the SFU and the hub, and returns the state for the routes.
pub async fn start(config: &Config) -> Result<AppState, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.clone(),
        source,
    })?;
    let url = config
        .database_url
        .clone()
        .unwrap_or_else(|| db::sqlite_url(&config.data_dir));
    let db = Db::open(&url).await?;
    db.ensure_demo_meeting().await?;
    // Stays the last run never closed (it was killed) end when they were last seen.
    let closed = attendance::close_dangling(&db).await?;
    if closed > 0 {
        tracing::info!(
            closed,
            "attendance of the previous run closed at its last heartbeat"
        );
    }
    let password_file = config.data_dir.join("initial-admin-password.txt");
    match auth::ensure_admin(&db, config.admin_password.as_deref(), &password_file).await {
        Ok(Some(where_)) => {
            tracing::info!("first start: administrator account `admin` created, password {where_}")
        }
        Ok(None) => {}
        Err(e) => return Err(StartError::Admin(e.message)),
    }
    let mut sfu_config = SfuConfig::new(config.media_addr);
    sfu_config.candidate_addrs = config.candidate_addrs();
    let (sfu, events) = sfu::spawn(sfu_config)
        .await
        .map_err(|source| StartError::Media {
            addr: config.media_addr,
            source,
        })?;
    let hub = Hub::spawn(db.clone(), sfu.clone(), events);
    let state = AppState {
        db,
        hub,
        sfu,
        ice_servers: Arc::new(config.ice_servers()),
        web_root: config.web_root.clone(),
        admin_token: config
            .admin_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(Arc::from),
        monitor: Arc::default(),
        test_hooks: config.test_hooks,
        trip_cost_vnd: config.trip_cost_vnd,
    };
    watch::spawn(state.clone());
    Ok(state)
}
