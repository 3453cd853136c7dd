//! Command-line and environment configuration of the bridge, with documented defaults.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;

use crate::protocol::IceServer;

/// A video conferencing bridge for government meeting rooms: signaling and an SFU in one process.
///
/// Every option can also be set by the environment variable shown.
#[derive(Debug, Clone, Parser)]
#[command(name = "bridge", version)]
pub struct Config {
    /// Address of the HTTPS server (web client, API, WebSocket).
    #[arg(long, env = "BRIDGE_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// Address of the SFU's UDP socket (all media of all meetings).
    #[arg(long, env = "BRIDGE_MEDIA_ADDR", default_value = "0.0.0.0:10000")]
    pub media_addr: SocketAddr,

    /// IP addresses at which clients can reach the media port (ICE host candidates). Defaults to
    /// the media address's IP, or 127.0.0.1 when that is 0.0.0.0: set it to the server's
    /// address on the government network for clients on other machines.
    #[arg(
        long = "candidate-ip",
        env = "BRIDGE_CANDIDATE_IPS",
        value_delimiter = ','
    )]
    pub candidate_ips: Vec<IpAddr>,

    /// Folder for the database and the generated certificate.
    #[arg(long, env = "BRIDGE_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// Folder of the built web client (`npm run build` makes it).
    #[arg(long, env = "BRIDGE_WEB_ROOT", default_value = "web-client/dist")]
    pub web_root: PathBuf,

    /// PEM certificate chain for HTTPS. Without it a self-signed certificate is generated into
    /// the data folder on first start.
    #[arg(long, env = "BRIDGE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "BRIDGE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Extra host names or IPs for the self-signed certificate.
    #[arg(long = "tls-name", env = "BRIDGE_TLS_NAMES", value_delimiter = ',')]
    pub tls_names: Vec<String>,

    /// STUN/TURN URLs handed to clients. None by default: the sites sit on a private network,
    /// and no public server is ever used unless an administrator configures one.
    #[arg(long = "ice-server", env = "BRIDGE_ICE_SERVERS", value_delimiter = ',')]
    pub ice_servers: Vec<String>,

    /// User name for the TURN servers in `--ice-server`.
    #[arg(long, env = "BRIDGE_TURN_USERNAME")]
    pub turn_username: Option<String>,

    /// Credential for the TURN servers in `--ice-server`.
    #[arg(long, env = "BRIDGE_TURN_CREDENTIAL")]
    pub turn_credential: Option<String>,

    /// Database URL: `postgres://user:password@host/db` for PostgreSQL. Default: SQLite, the file
    /// `bridge.sqlite3` in the data folder.
    #[arg(long, env = "BRIDGE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Password of the administrator account `admin` created on first start (when there is no
    /// account yet). Without it a random one is written to `initial-admin-password.txt` in the
    /// data folder.
    #[arg(long, env = "BRIDGE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,

    /// Bearer token for the moderation API (`POST /api/meetings/{id}/policy`). Without it the
    /// moderation API is off. Interim: accounts and roles replace it.
    #[arg(long, env = "BRIDGE_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// What one site's trip to a meeting costs, VND, for the statistics' estimate of the
    /// travel online meetings save. The default is about what the province's 2020 report works
    /// out to (1.5 billion VND saved over 64 meetings).
    #[arg(
        long = "trip-cost",
        env = "BRIDGE_TRIP_COST",
        default_value_t = 500_000
    )]
    pub trip_cost_vnd: u64,

    /// Test hooks for end-to-end tests: `POST /api/test/loss` drops a share of a site's
    /// incoming media at the SFU, as a lossy link would. Never in production.
    #[arg(long, hide = true)]
    pub test_hooks: bool,
}

/// The password of `admin` in [`Config::for_test`].
pub const TEST_ADMIN_PASSWORD: &str = "test-admin-password";

impl Config {
    /// The media addresses advertised to clients.
    pub fn candidate_addrs(&self) -> Vec<SocketAddr> {
        let port = self.media_addr.port();
        if !self.candidate_ips.is_empty() {
            return self
                .candidate_ips
                .iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect();
        }
        let ip = if self.media_addr.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            self.media_addr.ip()
        };
        vec![SocketAddr::new(ip, port)]
    }

    /// The ICE servers for clients, as configured.
    pub fn ice_servers(&self) -> Vec<IceServer> {
        if self.ice_servers.is_empty() {
            return Vec::new();
        }
        vec![IceServer {
            urls: self.ice_servers.clone(),
            username: self.turn_username.clone(),
            credential: self.turn_credential.clone(),
        }]
    }

    /// Defaults for a test: everything on loopback with free ports, data in `data_dir`.
    pub fn for_test(data_dir: PathBuf, web_root: PathBuf) -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            media_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            candidate_ips: Vec::new(),
            data_dir,
            web_root,
            tls_cert: None,
            tls_key: None,
            tls_names: Vec::new(),
            ice_servers: Vec::new(),
            turn_username: None,
            turn_credential: None,
            admin_token: None,
            database_url: None,
            admin_password: Some(TEST_ADMIN_PASSWORD.into()),
            test_hooks: false,
            trip_cost_vnd: 500_000,
        }
    }
}
