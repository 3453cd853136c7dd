//! Pre-encoded media for the generator: real VP8 and Opus bitstreams made once with Debian's
//! `vpxenc` (vpx-tools) and `opusenc` (opus-tools) from pictures and sound this module draws
//! itself, cached on disk, and read back as frames and packets. Nothing is encoded while the
//! benchmark runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;

/// Frames per second of every video clip.
pub const FPS: u32 = 30;
/// Frames in a clip (10 s); the generator loops it.
pub const CLIP_FRAMES: u32 = 300;
/// A keyframe every this many frames (2.5 s).
pub const KEYFRAME_INTERVAL: u32 = 75;
/// Frames encoded before the clip and dropped: the encoder's first keyframe is several times
/// larger than its steady-state ones (its rate buffer starts full), which no call would show
/// every 10 s.
pub const PREROLL_FRAMES: u32 = KEYFRAME_INTERVAL;
/// Opus packet duration.
pub const AUDIO_FRAME_MS: u32 = 20;

/// One encoded video frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Whether it is a keyframe.
    pub keyframe: bool,
    /// The VP8 frame as the encoder wrote it.
    pub data: Bytes,
}

/// A looped VP8 clip at one size and rate.
#[derive(Debug, Clone)]
pub struct VideoClip {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// The frames, in order, at [`FPS`].
    pub frames: Vec<Frame>,
}

impl VideoClip {
    /// The clip's average bit rate.
    pub fn bitrate_bps(&self) -> f64 {
        let bytes: usize = self.frames.iter().map(|f| f.data.len()).sum();
        bytes as f64 * 8.0 * f64::from(FPS) / self.frames.len().max(1) as f64
    }
}

/// One Opus packet with the audio level of the sound it carries.
#[derive(Debug, Clone)]
pub struct AudioPacket {
    /// The Opus packet.
    pub data: Bytes,
    /// RFC 6464 level: 0 (loudest, 0 dBov) to 127 (-127 dBov, silence).
    pub level: u8,
    /// Whether this part of the clip is speech (the voice-activity flag).
    pub voice: bool,
}

/// A looped Opus clip, mono 48 kHz, 20 ms packets.
#[derive(Debug, Clone)]
pub struct AudioClip {
    /// The packets in order.
    pub packets: Vec<AudioPacket>,
}

/// A video encoding the benchmark uses.
#[derive(Debug, Clone, Copy)]
pub struct VideoSpec {
    /// File name stem in the cache.
    pub name: &'static str,
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Target bit rate in kb/s.
    pub kbps: u32,
}

/// Simulcast layers q, h, f (as the web client sends: a 540p camera in three layers).
pub const SIMULCAST: [VideoSpec; 3] = [
    VideoSpec {
        name: "q-240x135-150k",
        width: 240,
        height: 135,
        kbps: 150,
    },
    VideoSpec {
        name: "h-480x270-500k",
        width: 480,
        height: 270,
        kbps: 500,
    },
    VideoSpec {
        name: "f-960x540-1500k",
        width: 960,
        height: 540,
        kbps: 1500,
    },
];

/// The matched scenario's single stream (as measured against Janus in TESTING.md).
pub const MATCHED: VideoSpec = VideoSpec {
    name: "m-640x480-1000k",
    width: 640,
    height: 480,
    kbps: 1000,
};

/// Everything the generator sends.
#[derive(Debug, Clone)]
pub struct Media {
    /// Simulcast layers q, h, f.
    pub simulcast: [VideoClip; 3],
    /// The matched scenario's 1 Mb/s stream.
    pub matched: VideoClip,
    /// Opus at about 32 kb/s, talk spurts and silences.
    pub audio: AudioClip,
}

/// Loads the media from `dir`, encoding what is missing first.
pub fn prepare(dir: &Path) -> Result<Media> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut clips = Vec::new();
    for spec in SIMULCAST.iter().chain([&MATCHED]) {
        let path = dir.join(format!("{}.ivf", spec.name));
        if !path.exists() {
            encode_video(spec, &path)?;
        }
        let clip = read_ivf(&path)?;
        ensure!(
            (clip.width, clip.height) == (spec.width, spec.height),
            "{} is {}x{}, expected {}x{}; delete it to re-encode",
            path.display(),
            clip.width,
            clip.height,
            spec.width,
            spec.height
        );
        clips.push(clip);
    }
    let audio_path = dir.join("speech-32k.opus");
    if !audio_path.exists() {
        encode_audio(&audio_path)?;
    }
    let audio = read_audio(&audio_path)?;
    let mut clips = clips.into_iter();
    let mut next = || clips.next().context("missing clip");
    Ok(Media {
        simulcast: [next()?, next()?, next()?],
        matched: next()?,
        audio,
    })
}

/// The default cache folder: `target/bench-media` beside the workspace.
pub fn default_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench-media")
}

fn encode_video(spec: &VideoSpec, out: &Path) -> Result<()> {
    eprintln!(
        "loadgen: encoding {} ({}x{}, {} kb/s) with vpxenc...",
        out.display(),
        spec.width,
        spec.height,
        spec.kbps
    );
    let tmp = out.with_extension("ivf.part");
    let mut child = Command::new("vpxenc")
        .args([
            "--codec=vp8",
            "--ivf",
            "--rt",
            "--cpu-used=8",
            "--end-usage=cbr",
            &format!("--target-bitrate={}", spec.kbps),
            &format!("--kf-min-dist={KEYFRAME_INTERVAL}"),
            &format!("--kf-max-dist={KEYFRAME_INTERVAL}"),
            "--lag-in-frames=0",
            "--error-resilient=1",
            "--threads=1",
            &format!("--limit={}", CLIP_FRAMES + PREROLL_FRAMES),
            "-q",
            "-o",
        ])
        .arg(&tmp)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running vpxenc (install it with: apt-get install vpx-tools)")?;
    {
        let stdin = child.stdin.take().context("vpxenc stdin")?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdin);
        write_y4m(
            &mut w,
            spec.width,
            spec.height,
            CLIP_FRAMES + PREROLL_FRAMES,
        )?;
        w.flush()?;
    }
    let status = child.wait()?;
    ensure!(status.success(), "vpxenc failed ({status})");
    std::fs::rename(&tmp, out)?;
    Ok(())
}

/// Draws a moving test picture with some noise (so the encoder spends its rate) as YUV4MPEG2.
fn write_y4m(w: &mut impl Write, width: u16, height: u16, frames: u32) -> Result<()> {
    let (wi, hi) = (usize::from(width), usize::from(height));
    writeln!(w, "YUV4MPEG2 W{width} H{height} F{FPS}:1 Ip A1:1 C420jpeg")?;
    // A fixed table of pseudo-random noise, read at a moving offset.
    let mut noise = vec![0u8; 1 << 16];
    let mut x: u32 = 0x1234_5678;
    for n in &mut noise {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *n = (x & 0x0f) as u8;
    }
    let mut y_plane = vec![0u8; wi * hi];
    let (cw, ch) = (wi.div_ceil(2), hi.div_ceil(2));
    let mut u_plane = vec![0u8; cw * ch];
    let mut v_plane = vec![0u8; cw * ch];
    for f in 0..frames as usize {
        let t = f as f64 / f64::from(FPS);
        // A bright disc moving on a circle, over a drifting diagonal gradient.
        let cx = wi as f64 * (0.5 + 0.3 * (t * 0.9).cos());
        let cy = hi as f64 * (0.5 + 0.3 * (t * 1.3).sin());
        let r2 = (hi as f64 * 0.18).powi(2);
        let shift = f * 3;
        let noff = f.wrapping_mul(7919);
        for yy in 0..hi {
            let row = &mut y_plane[yy * wi..(yy + 1) * wi];
            let dy = (yy as f64 - cy).powi(2);
            for (xx, px) in row.iter_mut().enumerate() {
                let base = ((xx + yy + shift) * 255 / (wi + hi)) as u8 / 2 + 40;
                let d = (xx as f64 - cx).powi(2) + dy;
                let v = if d < r2 { 220 } else { base };
                *px = v.saturating_add(noise[(yy * wi + xx + noff) & 0xffff]);
            }
        }
        for yy in 0..ch {
            for xx in 0..cw {
                u_plane[yy * cw + xx] = (96 + (xx + shift) * 64 / cw.max(1)) as u8;
                v_plane[yy * cw + xx] = (160 - (yy + shift / 2) % ch * 64 / ch.max(1)) as u8;
            }
        }
        w.write_all(b"FRAME\n")?;
        w.write_all(&y_plane)?;
        w.write_all(&u_plane)?;
        w.write_all(&v_plane)?;
    }
    Ok(())
}

/// Reads an IVF file of VP8 frames.
pub fn read_ivf(path: &Path) -> Result<VideoClip> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_ivf(&data).with_context(|| format!("parsing {}", path.display()))
}

fn parse_ivf(data: &[u8]) -> Result<VideoClip> {
    ensure!(
        data.len() >= 32 && &data[0..4] == b"DKIF",
        "not an IVF file"
    );
    ensure!(&data[8..12] == b"VP80", "not VP8");
    let header_len = usize::from(u16::from_le_bytes([data[6], data[7]]));
    let width = u16::from_le_bytes([data[12], data[13]]);
    let height = u16::from_le_bytes([data[14], data[15]]);
    let mut at = header_len.max(32);
    let mut frames = Vec::new();
    while at + 12 <= data.len() {
        let size =
            u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        at += 12;
        let frame = data
            .get(at..at + size)
            .context("IVF frame runs past the end of the file")?;
        ensure!(!frame.is_empty(), "empty IVF frame");
        frames.push(Frame {
            keyframe: frame[0] & 0x01 == 0,
            data: Bytes::copy_from_slice(frame),
        });
        at += size;
    }
    ensure!(!frames.is_empty(), "no frames");
    ensure!(
        frames[0].keyframe,
        "the clip does not start with a keyframe"
    );
    Ok(VideoClip {
        width,
        height,
        frames,
    })
}

const SAMPLE_RATE: usize = 48_000;
const AUDIO_SECONDS: usize = 10;

/// The clip's sound: talk spurts (a voiced harmonic tone with syllable rhythm) and silences.
fn speech_pcm() -> Vec<i16> {
    let n = SAMPLE_RATE * AUDIO_SECONDS;
    let mut out = Vec::with_capacity(n);
    let mut x: u32 = 0x9e37_79b9;
    for i in 0..n {
        let t = i as f64 / SAMPLE_RATE as f64;
        let talking = (0.0..3.5).contains(&t) || (5.0..8.0).contains(&t);
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let noise = (f64::from(x & 0xffff) / 65535.0 - 0.5) * 2.0;
        let s = if talking {
            let f0 = 140.0 + 15.0 * (t * 2.0 * std::f64::consts::PI * 0.7).sin();
            let phase = 2.0 * std::f64::consts::PI * f0 * t;
            let voiced: f64 = (1..=6).map(|k| (phase * k as f64).sin() / k as f64).sum();
            let syllable = 0.55 + 0.45 * (2.0 * std::f64::consts::PI * 4.0 * t).sin();
            0.25 * syllable * (voiced * 0.8 + noise * 0.1)
        } else {
            0.0005 * noise
        };
        out.push((s.clamp(-1.0, 1.0) * 32767.0) as i16);
    }
    out
}

/// RFC 6464 levels (-dBov, 0..=127) of each 20 ms frame of `pcm`.
fn frame_levels(pcm: &[i16]) -> Vec<u8> {
    let per = SAMPLE_RATE * AUDIO_FRAME_MS as usize / 1000;
    pcm.chunks(per)
        .map(|c| {
            let ms: f64 = c
                .iter()
                .map(|&s| (f64::from(s) / 32768.0).powi(2))
                .sum::<f64>()
                / c.len() as f64;
            if ms <= 0.0 {
                127
            } else {
                (-10.0 * ms.log10()).clamp(0.0, 127.0).round() as u8
            }
        })
        .collect()
}

fn encode_audio(out: &Path) -> Result<()> {
    eprintln!("loadgen: encoding {} with opusenc...", out.display());
    let tmp = out.with_extension("opus.part");
    let mut child = Command::new("opusenc")
        .args([
            "--quiet",
            "--raw",
            "--raw-chan",
            "1",
            "--raw-rate",
            "48000",
            "--bitrate",
            "32",
            "--framesize",
            "20",
            "--speech",
            "-",
        ])
        .arg(&tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("running opusenc (install it with: apt-get install opus-tools)")?;
    {
        let stdin = child.stdin.take().context("opusenc stdin")?;
        let mut w = std::io::BufWriter::new(stdin);
        for s in speech_pcm() {
            w.write_all(&s.to_le_bytes())?;
        }
        w.flush()?;
    }
    let status = child.wait()?;
    ensure!(status.success(), "opusenc failed ({status})");
    std::fs::rename(&tmp, out)?;
    Ok(())
}

fn read_audio(path: &Path) -> Result<AudioClip> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let packets = ogg_packets(&data).with_context(|| format!("parsing {}", path.display()))?;
    ensure!(
        packets.len() > 2 && packets[0].starts_with(b"OpusHead"),
        "{} is not an Ogg Opus file",
        path.display()
    );
    let levels = frame_levels(&speech_pcm());
    let packets: Vec<AudioPacket> = packets
        .into_iter()
        .skip(2) // OpusHead, OpusTags
        .enumerate()
        .map(|(i, p)| {
            let level = levels.get(i).copied().unwrap_or(127);
            AudioPacket {
                data: Bytes::from(p),
                level,
                voice: level < 60,
            }
        })
        .collect();
    Ok(AudioClip { packets })
}

/// The packets of the first logical stream of an Ogg file.
fn ogg_packets(mut data: &[u8]) -> Result<Vec<Vec<u8>>> {
    let mut packets = Vec::new();
    let mut current = Vec::new();
    while !data.is_empty() {
        ensure!(data.len() >= 27 && &data[0..4] == b"OggS", "bad Ogg page");
        let nseg = usize::from(data[26]);
        let table = data.get(27..27 + nseg).context("truncated Ogg page")?;
        let mut at = 27 + nseg;
        for &len in table {
            let len = usize::from(len);
            current.extend_from_slice(data.get(at..at + len).context("truncated Ogg segment")?);
            at += len;
            if len < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        data = &data[at..];
    }
    if packets.is_empty() {
        bail!("no Ogg packets");
    }
    Ok(packets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ivf_and_ogg_parsers_refuse_garbage() {
        assert!(parse_ivf(b"").is_err());
        assert!(parse_ivf(&[0u8; 64]).is_err());
        let mut ivf = b"DKIF\0\0\x20\0VP80\x10\0\x10\0".to_vec();
        ivf.resize(32, 0);
        ivf.extend_from_slice(&100u32.to_le_bytes());
        ivf.extend_from_slice(&[0u8; 8]);
        ivf.extend_from_slice(&[0u8; 3]);
        assert!(parse_ivf(&ivf).is_err(), "frame runs past the end");
        assert!(ogg_packets(b"OggS").is_err());
        assert!(ogg_packets(b"not ogg at all, not at all....").is_err());
    }

    #[test]
    fn levels_follow_the_talk_spurts() {
        let levels = frame_levels(&speech_pcm());
        assert_eq!(levels.len(), 500);
        assert!(levels[10] < 45, "speech is loud: {}", levels[10]);
        assert!(levels[200] > 60, "silence is quiet: {}", levels[200]);
    }
}
