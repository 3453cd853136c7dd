//! The GStreamer side: capture and encode (a camera or a test picture, in two or three VP8
//! layers; a microphone or a test tone, in Opus with its level), and decode what the meeting
//! sends. Encoded frames leave through `appsink`s into a channel; received frames come in
//! through an `appsrc`. GStreamer is a driver here: what to send, when to request keyframes and
//! which bitrate to use is decided elsewhere.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use crate::config::{Capture, Layer};

/// An encoded frame.
#[derive(Debug)]
pub enum Frame {
    /// VP8, one layer.
    Video {
        /// Layer index, lowest first.
        layer: usize,
        /// The frame.
        data: Vec<u8>,
        /// Presentation time.
        pts: Duration,
    },
    /// Opus, 20 ms.
    Audio {
        /// The packet.
        data: Vec<u8>,
        /// Presentation time.
        pts: Duration,
        /// Level, dBov (0 loudest, -127 silence).
        level: i8,
    },
}

/// What went wrong in a pipeline.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MediaError {
    /// GStreamer could not be initialised.
    #[error("GStreamer: {0}")]
    Init(String),
    /// The pipeline could not be built (a missing plugin, a bad element).
    #[error("cannot build the pipeline: {0}")]
    Build(String),
    /// It failed while running.
    #[error("the pipeline failed: {0}")]
    Failed(String),
}

/// Initialises GStreamer once.
pub fn init() -> Result<(), MediaError> {
    gst::init().map_err(|e| MediaError::Init(e.to_string()))
}

/// 16:9 width for a height, even.
pub fn width_of(height: u32) -> u32 {
    (height * 16 / 9) & !1
}

/// Whether the configured camera can be used now.
pub fn camera_present(camera: &str) -> bool {
    camera != "test" && Path::new(camera).exists()
}

/// The encoder element for a configured preference, given what is installed.
fn encoder(preference: &str) -> &'static str {
    let have = |name: &str| gst::ElementFactory::find(name).is_some();
    match preference {
        "vaapi" if have("vaapivp8enc") => "vaapivp8enc",
        "v4l2" if have("v4l2vp8enc") => "v4l2vp8enc",
        "auto" if have("vaapivp8enc") => "vaapivp8enc",
        "auto" if have("v4l2vp8enc") => "v4l2vp8enc",
        _ => "vp8enc",
    }
}

/// The capture and encode pipeline.
pub struct Sender {
    pipeline: gst::Pipeline,
    encoders: Vec<gst::Element>,
    /// Per layer, a valve that pauses it.
    gates: Vec<gst::Element>,
    sinks: Vec<gst_app::AppSink>,
    /// Whether a real camera (not the test picture) is being captured.
    pub camera: bool,
    /// The encoder in use.
    pub encoder: &'static str,
    /// Frames encoded per layer so far.
    pub frames: Arc<Vec<AtomicU64>>,
    /// Bytes encoded per layer so far.
    pub bytes: Arc<Vec<AtomicU64>>,
    errors: Option<std::thread::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Sender {
    /// Builds and starts capture and encoding; frames go to `frames`, a fatal error to
    /// `failed`.
    pub fn start(
        capture: &Capture,
        layers: &[Layer],
        encoder_preference: &str,
        frames_out: mpsc::Sender<Frame>,
        failed: mpsc::UnboundedSender<String>,
    ) -> Result<Self, MediaError> {
        let camera = camera_present(&capture.camera);
        let top = layers.last().map_or(360, |l| l.height);
        let fps = capture.fps;
        let video_src = if camera {
            format!(
                "v4l2src device={} ! videoconvert ! videoscale ! videorate",
                capture.camera
            )
        } else {
            format!(
                "videotestsrc is-live=true {}",
                capture.test_pattern.properties()
            )
        };
        let audio_src = match capture.microphone.as_str() {
            "test" => "audiotestsrc is-live=true wave=sine freq=440 volume=0.2".to_string(),
            "default" => "autoaudiosrc".to_string(),
            device => format!("alsasrc device={device}"),
        };
        let encoder = encoder(encoder_preference);
        let mut description = format!(
            "{video_src} ! video/x-raw,width={},height={top},framerate={fps}/1 ! \
             videoconvert ! tee name=t ",
            width_of(top)
        );
        // Each layer: a valve pauses it when the link cannot carry it; its appsink does not
        // wait to preroll (async=false), or a layer paused from the start would hold the whole
        // live pipeline in PAUSED.
        for (i, layer) in layers.iter().enumerate() {
            let settings = if encoder == "vp8enc" {
                format!(
                    "deadline=1 cpu-used=16 end-usage=cbr lag-in-frames=0 threads=2 \
                     error-resilient=default dropframe-threshold=30 keyframe-max-dist={} \
                     target-bitrate={}",
                    fps * 4,
                    layer.kbps * 1000
                )
            } else {
                String::new()
            };
            description.push_str(&format!(
                "t. ! queue max-size-buffers=2 leaky=downstream ! \
                 valve name=gate{i} drop-mode=forward-sticky-events ! videoscale ! \
                 video/x-raw,width={},height={} ! {encoder} name=enc{i} {settings} ! \
                 appsink name=video{i} sync=false async=false max-buffers=8 drop=true ",
                width_of(layer.height),
                layer.height
            ));
        }
        description.push_str(&format!(
            "{audio_src} ! audioconvert ! audioresample ! \
             audio/x-raw,format=S16LE,rate=48000,channels=1 ! volume name=mic ! identity name=level ! \
             opusenc bitrate=32000 frame-size=20 dtx=true ! appsink name=audio sync=false max-buffers=16 drop=true"
        ));
        tracing::debug!(%description, "capture pipeline");
        let pipeline = gst::parse::launch(&description)
            .map_err(|e| MediaError::Build(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| MediaError::Build("not a pipeline".into()))?;
        let by_name = |name: &str| {
            pipeline
                .by_name(name)
                .ok_or_else(|| MediaError::Build(format!("no element {name}")))
        };
        let level = Arc::new(AtomicI32::new(-127));
        let meter = level.clone();
        by_name("level")?
            .static_pad("src")
            .ok_or_else(|| MediaError::Build("level pad".into()))?
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buffer) = info.buffer()
                    && let Ok(map) = buffer.map_readable()
                {
                    meter.store(i32::from(dbov(map.as_slice())), Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            });
        let frames: Arc<Vec<AtomicU64>> =
            Arc::new(layers.iter().map(|_| AtomicU64::new(0)).collect());
        let bytes: Arc<Vec<AtomicU64>> =
            Arc::new(layers.iter().map(|_| AtomicU64::new(0)).collect());
        let mut encoders = Vec::new();
        let mut gates = Vec::new();
        let mut sinks = Vec::new();
        for i in 0..layers.len() {
            encoders.push(by_name(&format!("enc{i}"))?);
            gates.push(by_name(&format!("gate{i}"))?);
            let sink = by_name(&format!("video{i}"))?
                .downcast::<gst_app::AppSink>()
                .map_err(|_| MediaError::Build("appsink".into()))?;
            let out = frames_out.clone();
            let (counted, sized) = (frames.clone(), bytes.clone());
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        if let Some(buffer) = sample.buffer()
                            && let Ok(map) = buffer.map_readable()
                        {
                            counted[i].fetch_add(1, Ordering::Relaxed);
                            sized[i].fetch_add(map.len() as u64, Ordering::Relaxed);
                            let pts = buffer
                                .pts()
                                .map_or(Duration::ZERO, |t| Duration::from_nanos(t.nseconds()));
                            // A full queue: the network is behind, this frame is dropped.
                            let _ = out.try_send(Frame::Video {
                                layer: i,
                                data: map.as_slice().to_vec(),
                                pts,
                            });
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
            sinks.push(sink);
        }
        let audio = by_name("audio")?
            .downcast::<gst_app::AppSink>()
            .map_err(|_| MediaError::Build("appsink".into()))?;
        let out = frames_out;
        audio.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    if let Some(buffer) = sample.buffer()
                        && let Ok(map) = buffer.map_readable()
                        && !is_dtx_pause(map.as_slice())
                    {
                        let pts = buffer
                            .pts()
                            .map_or(Duration::ZERO, |t| Duration::from_nanos(t.nseconds()));
                        let _ = out.try_send(Frame::Audio {
                            data: map.as_slice().to_vec(),
                            pts,
                            level: level.load(Ordering::Relaxed).clamp(-127, 0) as i8,
                        });
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        play(&pipeline)?;
        let errors = watch_errors(&pipeline, failed, stop.clone())?;
        Ok(Self {
            pipeline,
            encoders,
            gates,
            sinks,
            camera,
            encoder,
            frames,
            bytes,
            errors: Some(errors),
            stop,
        })
    }

    /// Asks layer `layer`'s encoder for a keyframe.
    pub fn request_keyframe(&self, layer: usize) {
        if let Some(sink) = self.sinks.get(layer) {
            let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
                .all_headers(true)
                .build();
            sink.send_event(event);
        }
    }

    /// Mutes or unmutes the microphone (a muted room sends silence, and its level says so).
    pub fn set_muted(&self, muted: bool) {
        if let Some(volume) = self.pipeline.by_name("mic") {
            volume.set_property("mute", muted);
        }
    }

    /// Sets layer `layer`'s target bitrate; `None` pauses the layer (nothing is scaled or
    /// encoded), and a layer that resumes starts with a keyframe.
    pub fn set_bitrate(&self, layer: usize, bps: Option<u32>) {
        let Some(gate) = self.gates.get(layer) else {
            return;
        };
        let was_paused = gate.property::<bool>("drop");
        gate.set_property("drop", bps.is_none());
        let Some(bps) = bps else {
            return;
        };
        if let Some(enc) = self.encoders.get(layer)
            && enc.find_property("target-bitrate").is_some()
        {
            let value = i32::try_from(bps).unwrap_or(i32::MAX);
            enc.set_property("target-bitrate", value);
        }
        if was_paused {
            self.request_keyframe(layer);
        }
    }

    /// Whether layer `layer` is paused (the link cannot carry it, or the SFU suspended it).
    pub fn is_paused(&self, layer: usize) -> bool {
        self.gates
            .get(layer)
            .is_some_and(|g| g.property::<bool>("drop"))
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(t) = self.errors.take() {
            let _ = t.join();
        }
    }
}

/// Forwards the pipeline's first error to `failed`, from a thread of its own.
fn watch_errors(
    pipeline: &gst::Pipeline,
    failed: mpsc::UnboundedSender<String>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Result<std::thread::JoinHandle<()>, MediaError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| MediaError::Build("no bus".into()))?;
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Error(e) => {
                    let _ = failed.send(error_text(e));
                    return;
                }
                gst::MessageView::Eos(_) => {
                    let _ = failed.send("the source ended".into());
                    return;
                }
                _ => {}
            }
        }
    }))
}

/// Whether an Opus packet from the encoder is a DTX pause: with `dtx=true` `opusenc` marks
/// each 20 ms of silence it need not send with a packet of one or two bytes (the table of
/// contents alone), and sends a real packet every 400 ms. The SFU asks for DTX (`usedtx=1`);
/// like libwebrtc, the agent does not transmit the pauses, so a listening room sends 2.5
/// audio packets a second instead of 50.
pub fn is_dtx_pause(opus: &[u8]) -> bool {
    opus.len() <= 2
}

/// The level of 16-bit samples, dBov (0 loudest, -127 silence).
pub fn dbov(samples: &[u8]) -> i8 {
    let n = samples.len() / 2;
    if n == 0 {
        return -127;
    }
    let sum: f64 = samples
        .chunks_exact(2)
        .map(|c| f64::from(i16::from_le_bytes([c[0], c[1]])).powi(2))
        .sum();
    let rms = (sum / n as f64).sqrt() / 32768.0;
    if rms <= 0.0 {
        return -127;
    }
    (20.0 * rms.log10()).round().clamp(-127.0, 0.0) as i8
}

/// A running `appsrc (caps) ! <rest>` pipeline whose element `dec` counts its output buffers
/// in `decoded`.
fn decoder(
    caps: &str,
    rest: &str,
    decoded: Arc<AtomicU64>,
) -> Result<(gst::Pipeline, gst_app::AppSrc), MediaError> {
    let description =
        format!("appsrc name=src is-live=true format=time do-timestamp=true caps={caps} ! {rest}");
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| MediaError::Build(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| MediaError::Build("not a pipeline".into()))?;
    let src = pipeline
        .by_name("src")
        .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        .ok_or_else(|| MediaError::Build("appsrc".into()))?;
    pipeline
        .by_name("dec")
        .and_then(|d| d.static_pad("src"))
        .ok_or_else(|| MediaError::Build("decoder pad".into()))?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            decoded.fetch_add(1, Ordering::Relaxed);
            gst::PadProbeReturn::Ok
        });
    play(&pipeline)?;
    Ok((pipeline, src))
}

/// Starts a pipeline. When it cannot start, it is stopped again and the error says why, in the
/// words of the element that failed (a camera that is no camera: "Cannot identify device").
fn play(pipeline: &gst::Pipeline) -> Result<(), MediaError> {
    let Err(e) = pipeline.set_state(gst::State::Playing) else {
        return Ok(());
    };
    let reason = pipeline
        .bus()
        .and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]))
        .and_then(|msg| match msg.view() {
            gst::MessageView::Error(err) => Some(error_text(err)),
            _ => None,
        })
        .unwrap_or_else(|| e.to_string());
    let _ = pipeline.set_state(gst::State::Null);
    Err(MediaError::Failed(format!("cannot start: {reason}")))
}

/// An error message as the agent reports it: the element's path, then the error.
fn error_text(e: &gst::message::Error) -> String {
    format!(
        "{}: {}",
        e.src().map(|s| s.path_string()).unwrap_or_default(),
        e.error()
    )
}

/// The decode pipeline for the video shown (the chair or the speaker).
pub struct Receiver {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    /// Frames decoded so far.
    pub decoded: Arc<AtomicU64>,
}

impl Receiver {
    /// Builds and starts it; `display` false: decode only.
    pub fn start(display: bool) -> Result<Self, MediaError> {
        let sink = if display {
            "autovideosink sync=false"
        } else {
            "fakesink sync=false"
        };
        let decoded = Arc::new(AtomicU64::new(0));
        let (pipeline, src) = decoder(
            "video/x-vp8",
            &format!("vp8dec name=dec ! videoconvert ! {sink}"),
            decoded.clone(),
        )?;
        Ok(Self {
            pipeline,
            src,
            decoded,
        })
    }

    /// One received VP8 frame.
    pub fn push(&self, frame: &[u8]) {
        let _ = self
            .src
            .push_buffer(gst::Buffer::from_slice(frame.to_vec()));
    }
}

/// Plays one audio slot (the SFU switches voices onto a few slots; each gets a player, and the
/// sound system mixes them).
pub struct AudioPlayer {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
}

impl AudioPlayer {
    /// Builds and starts it; `audible` false: decode only; decoded buffers are counted in
    /// `decoded`.
    pub fn start(audible: bool, decoded: Arc<AtomicU64>) -> Result<Self, MediaError> {
        let sink = if audible {
            "autoaudiosink sync=false"
        } else {
            "fakesink sync=false"
        };
        let (pipeline, src) = decoder(
            "audio/x-opus,channel-mapping-family=0,channels=2,rate=48000",
            &format!("opusdec name=dec ! audioconvert ! audioresample ! {sink}"),
            decoded,
        )?;
        Ok(Self { pipeline, src })
    }

    /// One received Opus packet.
    pub fn push(&self, packet: &[u8]) {
        let _ = self
            .src
            .push_buffer(gst::Buffer::from_slice(packet.to_vec()));
    }
}

impl Drop for AudioPlayer {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_dbov() {
        let full: Vec<u8> = std::iter::repeat_n(i16::MAX.to_le_bytes(), 480)
            .flatten()
            .collect();
        assert_eq!(dbov(&full), 0);
        let silent = vec![0u8; 960];
        assert_eq!(dbov(&silent), -127);
        let tenth: Vec<u8> = std::iter::repeat_n(3277i16.to_le_bytes(), 480)
            .flatten()
            .collect();
        assert_eq!(dbov(&tenth), -20);
    }

    #[test]
    fn widths_are_sixteen_ninths_and_even() {
        assert_eq!(width_of(720), 1280);
        assert_eq!(width_of(180), 320);
        assert_eq!(width_of(90), 160);
    }

    /// Real GStreamer: the test sources in two layers give VP8 frames of both and Opus.
    #[test]
    fn a_device_that_is_no_camera_fails_with_the_reason() {
        init().expect("GStreamer");
        let device = std::env::temp_dir().join(format!("no-camera-{}", std::process::id()));
        std::fs::write(&device, b"not a camera").expect("write");
        let capture = Capture {
            camera: device.display().to_string(),
            microphone: "test".into(),
            ..Capture::default()
        };
        let layers = [
            Layer {
                height: 90,
                kbps: 100,
            },
            Layer {
                height: 180,
                kbps: 200,
            },
        ];
        let (tx, _rx) = mpsc::channel(4);
        let (failed, mut failures) = mpsc::unbounded_channel();
        let e = Sender::start(&capture, &layers, "software", tx, failed)
            .err()
            .expect("refused");
        let _ = std::fs::remove_file(&device);
        let text = e.to_string();
        assert!(text.contains("v4l2src"), "the element is named: {text}");
        assert!(
            failures.try_recv().is_err(),
            "reported once, not again from the bus"
        );
    }

    #[tokio::test]
    async fn test_sources_encode_two_layers_and_audio() {
        init().expect("GStreamer");
        let capture = Capture {
            camera: "test".into(),
            microphone: "test".into(),
            fps: 15,
            test_pattern: crate::config::TestPattern::ZonePlate,
        };
        let layers = [
            Layer {
                height: 90,
                kbps: 100,
            },
            Layer {
                height: 180,
                kbps: 200,
            },
        ];
        let (tx, mut rx) = mpsc::channel(64);
        let (failed, mut failures) = mpsc::unbounded_channel();
        let sender = Sender::start(&capture, &layers, "software", tx, failed).expect("pipeline");
        assert!(!sender.camera);
        // The link is thin from the start: the top layer is paused before its first frame.
        sender.set_bitrate(1, None);
        let mut seen = [0usize; 3];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen[0] < 5 || seen[2] < 5 {
            let frame = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("the bottom layer and audio within 10 s, the top one paused")
                .expect("open");
            match frame {
                Frame::Video { layer, .. } => seen[layer] += 1,
                Frame::Audio { .. } => seen[2] += 1,
            }
        }
        assert_eq!(seen[1], 0, "the top layer is paused");
        sender.set_bitrate(1, Some(200_000));
        let mut seen = [0usize; 3];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while seen.iter().any(|n| *n < 5) {
            let frame = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("frames within 10 s")
                .expect("open");
            match frame {
                Frame::Video { layer, data, .. } => {
                    assert!(!data.is_empty());
                    seen[layer] += 1;
                }
                Frame::Audio { level, .. } => {
                    assert!(level > -40, "the test tone is audible: {level}");
                    seen[2] += 1;
                }
            }
        }
        sender.request_keyframe(1);
        sender.set_bitrate(1, Some(150_000));

        // Paused, the top layer stops while the bottom one goes on.
        sender.set_bitrate(1, None);
        assert!(sender.is_paused(1) && !sender.is_paused(0));
        tokio::time::sleep(Duration::from_millis(300)).await;
        while rx.try_recv().is_ok() {}
        let mut seen = [0usize; 2];
        let until = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(Some(frame)) = tokio::time::timeout_at(until, rx.recv()).await {
            if let Frame::Video { layer, .. } = frame {
                seen[layer] += 1;
            }
        }
        assert!(seen[0] >= 5, "the bottom layer goes on: {seen:?}");
        assert_eq!(seen[1], 0, "the paused layer is silent");

        // Resumed, it starts again with a keyframe (VP8: the frame tag's first bit is 0).
        sender.set_bitrate(1, Some(150_000));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let first = loop {
            let frame = tokio::time::timeout_at(deadline, rx.recv())
                .await
                .expect("the resumed layer within 5 s")
                .expect("open");
            if let Frame::Video { layer: 1, data, .. } = frame {
                break data;
            }
        };
        assert_eq!(first[0] & 1, 0, "a resumed layer starts with a keyframe");

        // Muted, the room is silent: with DTX the encoder's pauses are not sent, only a
        // packet every 400 ms (50 a second without DTX).
        sender.set_muted(true);
        tokio::time::sleep(Duration::from_millis(500)).await;
        while rx.try_recv().is_ok() {}
        let mut audio = 0;
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while let Ok(Some(frame)) = tokio::time::timeout_at(until, rx.recv()).await {
            if let Frame::Audio { data, level, .. } = frame {
                assert!(!is_dtx_pause(&data), "a pause was sent");
                assert_eq!(level, -127, "the muted room's level is silence");
                audio += 1;
            }
        }
        assert!(
            (2..=12).contains(&audio),
            "{audio} audio packets in 2 s of silence"
        );
        assert!(failures.try_recv().is_err(), "no pipeline error");
        drop(sender);
    }
}
