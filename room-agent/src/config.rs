//! The agent's configuration: one TOML file (annotated sample: `deploy/room-agent.toml`).
//! Unknown keys are refused with the key's name, so that a typo never silently changes nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Largest configuration file read, in bytes.
const MAX_FILE: u64 = 64 * 1024;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The bridge and how to log in to it.
    pub server: Server,
    /// Camera and microphone.
    #[serde(default)]
    pub capture: Capture,
    /// Video encoding.
    #[serde(default)]
    pub video: Video,
    /// The PTZ camera's control port (VISCA over IP); absent: no camera control.
    #[serde(default)]
    pub camera_control: Option<CameraControl>,
    /// Where the meeting is shown.
    #[serde(default)]
    pub display: Display,
}

/// The bridge.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// The bridge's address, e.g. `https://bridge.example.gov.vn:8443`.
    pub url: String,
    /// This terminal's identity, as registered on its site.
    pub terminal_id: String,
    /// The file holding the device credential an administrator issued for the site.
    pub secret_file: PathBuf,
    /// PEM certificates of the authorities that sign the bridge's certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Or: the bridge's own (self-signed) certificate, PEM; only that exact certificate is
    /// accepted.
    #[serde(default)]
    pub pinned_certificate: Option<PathBuf>,
    /// Display name in meetings; default: the terminal id.
    #[serde(default)]
    pub name: Option<String>,
    /// How often the schedule is read, in seconds (default 5).
    #[serde(default = "default_poll")]
    pub schedule_poll_secs: u64,
}

fn default_poll() -> u64 {
    5
}

/// Where the picture and sound come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capture {
    /// A V4L2 device (`/dev/video0`), or `test` for a test picture. When the device does not
    /// exist the agent uses the test picture and reports the camera missing.
    #[serde(default = "default_camera")]
    pub camera: String,
    /// An ALSA device (`hw:1`), `default`, or `test` for a test tone.
    #[serde(default = "default_microphone")]
    pub microphone: String,
    /// Capture frame rate.
    #[serde(default = "default_fps")]
    pub fps: u32,
    /// The test picture: `ball` (default; compresses to little), `smpte` (colour bars), or
    /// `zone-plate` (moving rings: the encoder spends what it is allowed, which shows
    /// bitrate adaptation).
    #[serde(default)]
    pub test_pattern: TestPattern,
}

/// A `videotestsrc` pattern.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestPattern {
    /// A ball moving over black.
    #[default]
    Ball,
    /// Colour bars.
    Smpte,
    /// Moving concentric rings.
    ZonePlate,
}

impl TestPattern {
    /// Its `videotestsrc` properties.
    pub fn properties(self) -> &'static str {
        match self {
            Self::Ball => "pattern=ball",
            Self::Smpte => "pattern=smpte",
            Self::ZonePlate => "pattern=zone-plate kt=3 kx2=20 ky2=20",
        }
    }
}

fn default_camera() -> String {
    "/dev/video0".into()
}
fn default_microphone() -> String {
    "default".into()
}
fn default_fps() -> u32 {
    25
}

impl Default for Capture {
    fn default() -> Self {
        Self {
            camera: default_camera(),
            microphone: default_microphone(),
            fps: default_fps(),
            test_pattern: TestPattern::default(),
        }
    }
}

/// One simulcast layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// Picture height (the width follows 16:9).
    pub height: u32,
    /// Target bitrate, kilobits per second.
    pub kbps: u32,
}

/// Video encoding.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Video {
    /// The layers sent, lowest first: at least two, at most three.
    #[serde(default = "default_layers")]
    pub layers: Vec<Layer>,
    /// `auto` (a hardware encoder when there is one), `software`, `vaapi` or `v4l2`.
    #[serde(default = "default_encoder")]
    pub encoder: String,
    /// Ceiling on the total video bitrate, kilobits per second (technicians can change it).
    #[serde(default)]
    pub max_kbps: Option<u32>,
}

fn default_layers() -> Vec<Layer> {
    vec![
        Layer {
            height: 180,
            kbps: 150,
        },
        Layer {
            height: 720,
            kbps: 1500,
        },
    ]
}
fn default_encoder() -> String {
    "auto".into()
}

impl Default for Video {
    fn default() -> Self {
        Self {
            layers: default_layers(),
            encoder: default_encoder(),
            max_kbps: None,
        }
    }
}

/// The PTZ camera's VISCA-over-IP port.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraControl {
    /// Address and port (usually 52381).
    pub address: SocketAddr,
    /// How long to wait for each reply, in milliseconds (default 1000).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_timeout() -> u64 {
    1000
}

/// Where the meeting is shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Display {
    /// A window or the screen, when there is one; nothing otherwise.
    #[default]
    Auto,
    /// Decode, show nothing (headless; CI).
    None,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Too big to be a configuration.
    #[error("{0} is larger than 64 KiB: not a configuration file")]
    TooLarge(PathBuf),
    /// Not valid TOML, an unknown key, a wrong type.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line.
        message: String,
    },
    /// Valid TOML, but a value that cannot work.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads and checks the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let read = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_FILE {
            return Err(ConfigError::TooLarge(path.to_path_buf()));
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse(&text).map_err(|e| match e {
            ParseError::Toml(message) => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            ParseError::Invalid(message) => ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            },
        })
    }

    /// Parses and checks the text of a configuration.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let config: Self = toml::from_str(text).map_err(|e| ParseError::Toml(e.to_string()))?;
        config.check().map_err(ParseError::Invalid)?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        let url = &self.server.url;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(format!(
                "server.url must start with https:// (or http://), not {url:?}"
            ));
        }
        if self.server.terminal_id.trim().is_empty() {
            return Err("server.terminal_id is empty".into());
        }
        if self.server.ca_file.is_some() && self.server.pinned_certificate.is_some() {
            return Err("set server.ca_file or server.pinned_certificate, not both".into());
        }
        let layers = &self.video.layers;
        if !(2..=3).contains(&layers.len()) {
            return Err(format!(
                "video.layers: two or three layers, not {}",
                layers.len()
            ));
        }
        if layers.windows(2).any(|w| w[0].height >= w[1].height) {
            return Err("video.layers: lowest first, each taller than the one before".into());
        }
        if layers
            .iter()
            .any(|l| !(90..=1080).contains(&l.height) || !(30..=8000).contains(&l.kbps))
        {
            return Err("video.layers: heights 90 to 1080, 30 to 8000 kbps".into());
        }
        if !["auto", "software", "vaapi", "v4l2"].contains(&self.video.encoder.as_str()) {
            return Err(format!(
                "video.encoder: auto, software, vaapi or v4l2, not {:?}",
                self.video.encoder
            ));
        }
        if !(5..=60).contains(&self.capture.fps) {
            return Err("capture.fps: 5 to 60".into());
        }
        if self.server.schedule_poll_secs == 0 || self.server.schedule_poll_secs > 300 {
            return Err("server.schedule_poll_secs: 1 to 300".into());
        }
        Ok(())
    }

    /// The name shown in meetings.
    pub fn display_name(&self) -> String {
        self.server
            .name
            .clone()
            .unwrap_or_else(|| self.server.terminal_id.clone())
    }
}

/// Why configuration text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not valid TOML, an unknown key, a wrong type.
    #[error("{0}")]
    Toml(String),
    /// A value that cannot work.
    #[error("{0}")]
    Invalid(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[server]
url = "https://127.0.0.1:8443"
terminal_id = "rt-x001"
secret_file = "/etc/room-agent/secret"
"#;

    #[test]
    fn the_sample_in_deploy_parses() {
        let config = Config::parse(include_str!("../../deploy/room-agent.toml")).expect("valid");
        assert_eq!(config.video.layers.len(), 2);
        assert!(config.camera_control.is_some());
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let c = Config::parse(MINIMAL).expect("valid");
        assert_eq!(c.capture.camera, "/dev/video0");
        assert_eq!(c.video.layers, default_layers());
        assert_eq!(c.display, Display::Auto);
        assert_eq!(c.display_name(), "rt-x001");
        assert_eq!(c.capture.test_pattern, TestPattern::Ball);
    }

    #[test]
    fn the_test_picture_is_chosen_by_name() {
        let c = Config::parse(&format!(
            "{MINIMAL}[capture]\ntest_pattern = \"zone-plate\"\n"
        ))
        .expect("valid");
        assert_eq!(c.capture.test_pattern, TestPattern::ZonePlate);
        let e = Config::parse(&format!("{MINIMAL}[capture]\ntest_pattern = \"plaid\"\n"))
            .expect_err("refused");
        assert!(e.to_string().contains("plaid"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let text = format!("{MINIMAL}\n[capture]\ncamra = \"test\"\n");
        let e = Config::parse(&text).expect_err("refused");
        assert!(e.to_string().contains("camra"), "{e}");
        let e = Config::parse(&format!("{MINIMAL}\nextra = 1\n")).expect_err("refused");
        assert!(e.to_string().contains("extra"), "{e}");
    }

    #[test]
    fn values_that_cannot_work_are_refused() {
        for (extra, words) in [
            (
                "[video]\nlayers = [{ height = 720, kbps = 1500 }]\n",
                "two or three",
            ),
            (
                "[video]\nlayers = [{ height = 720, kbps = 1500 }, { height = 180, kbps = 150 }]\n",
                "lowest first",
            ),
            ("[video]\nencoder = \"magic\"\n", "video.encoder"),
            ("[capture]\nfps = 0\n", "capture.fps"),
        ] {
            let e = Config::parse(&format!("{MINIMAL}{extra}")).expect_err(extra);
            assert!(e.to_string().contains(words), "{extra}: {e}");
        }
        let e = Config::parse(
            "[server]\nurl = \"ftp://x\"\nterminal_id = \"a\"\nsecret_file = \"s\"\n",
        )
        .expect_err("ftp");
        assert!(e.to_string().contains("https://"));
    }
}
