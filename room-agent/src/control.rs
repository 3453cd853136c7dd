//! What the agent decides, as a pure state machine: when to connect to signaling, which meeting
//! to join and when to leave it, when to rebuild a failed pipeline, how long to wait after each
//! failure. No GStreamer, no network, no clock: inputs in (with `now`), actions out, so that
//! every rule is tested directly. The shell (`agent.rs`) carries the actions out.

use std::time::{Duration, Instant};

/// First wait after a failure; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// After a refused join (locked, not invited), wait this long before trying that meeting again.
pub const REFUSED_PAUSE: Duration = Duration::from_secs(30);
/// After another terminal of the site took this one's place, leave the meeting to it this long.
pub const REPLACED_PAUSE: Duration = Duration::from_secs(120);
/// A join that has no answer after this long is given up (and retried).
pub const JOIN_TIMEOUT: Duration = Duration::from_secs(15);
/// After a pipeline capturing the camera failed, the room sends the test picture (and is still
/// heard) this long before the camera is tried again (sooner if it is unplugged and back).
pub const CAMERA_RETRY: Duration = Duration::from_secs(60);

/// A meeting the site is invited to, as the schedule says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// Its id.
    pub id: i64,
    /// Roll call is open or it is in progress: the site should be in.
    pub open: bool,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Time passed.
    Tick,
    /// The signaling connection is up (logged in, WebSocket open).
    SignalingUp,
    /// It failed or dropped.
    SignalingDown,
    /// The site's schedule, soonest first.
    Schedule(Vec<Planned>),
    /// The server welcomed the agent into a meeting.
    Joined(i64),
    /// The server refused it (`code`: `meeting_locked`, `not_invited`, ...).
    JoinRefused(i64, String),
    /// The agent is no longer in its meeting (media lost, removed by the server).
    Left,
    /// Another terminal of the site took this one's place.
    Replaced,
    /// The capture/encode pipeline runs.
    PipelineRunning,
    /// It failed (camera unplugged, an element errored).
    PipelineFailed(String),
    /// A technician asked for the pipeline to be rebuilt.
    RestartPipeline,
    /// Whether the camera device is there (reported at start and whenever it changes).
    Camera(bool),
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Log in and open the WebSocket.
    Connect,
    /// Read the site's schedule.
    FetchSchedule,
    /// Join this meeting (start capture, offer media).
    Join(i64),
    /// Leave the meeting (stop media).
    Leave,
    /// Build (or rebuild) the capture/encode pipeline, from the camera or (`camera: false`)
    /// from the test picture.
    StartPipeline {
        /// Capture the camera.
        camera: bool,
    },
    /// Stop it.
    StopPipeline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Down { retry_at: Instant },
    Connecting,
    Up,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Room {
    Out,
    Joining { id: i64, since: Instant },
    In { id: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pipeline {
    Stopped,
    Starting,
    Running,
    Failed { retry_at: Instant },
}

/// Doubling waits, reset by a success.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Self {
            next: FIRST_BACKOFF,
        }
    }

    fn fail(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        wait
    }

    fn reset(&mut self) {
        self.next = FIRST_BACKOFF;
    }
}

/// The agent's decisions.
#[derive(Debug, Clone)]
pub struct Control {
    link: Link,
    room: Room,
    pipeline: Pipeline,
    link_backoff: Backoff,
    pipeline_backoff: Backoff,
    poll_every: Duration,
    next_poll: Option<Instant>,
    schedule: Vec<Planned>,
    /// A meeting not to try before a time (refused, or another terminal replaced this one).
    paused: Option<(i64, Instant)>,
    /// The camera device is there.
    camera_present: bool,
    /// A pipeline capturing the camera failed: not before this time again.
    camera_blocked_until: Option<Instant>,
    /// The pipeline being built or running captures the camera.
    pipeline_camera: bool,
}

impl Control {
    /// A fresh agent: it connects at once.
    pub fn new(now: Instant, poll_every: Duration) -> Self {
        Self {
            link: Link::Down { retry_at: now },
            room: Room::Out,
            pipeline: Pipeline::Stopped,
            link_backoff: Backoff::new(),
            pipeline_backoff: Backoff::new(),
            poll_every,
            next_poll: None,
            schedule: Vec::new(),
            paused: None,
            camera_present: false,
            camera_blocked_until: None,
            pipeline_camera: false,
        }
    }

    /// Whether a pipeline built at `now` should capture the camera.
    fn camera_wanted(&self, now: Instant) -> bool {
        self.camera_present && self.camera_blocked_until.is_none_or(|t| now >= t)
    }

    /// Whether the camera failed and the test picture stands in for it.
    pub fn camera_blocked(&self, now: Instant) -> bool {
        self.camera_present && !self.camera_wanted(now)
    }

    fn start_pipeline(&mut self, now: Instant, out: &mut Vec<Action>) {
        let camera = self.camera_wanted(now);
        if camera {
            self.camera_blocked_until = None;
        }
        self.pipeline = Pipeline::Starting;
        self.pipeline_camera = camera;
        out.push(Action::StartPipeline { camera });
    }

    /// The meeting the agent is in, if any.
    pub fn meeting(&self) -> Option<i64> {
        match self.room {
            Room::In { id } => Some(id),
            _ => None,
        }
    }

    /// Whether the signaling connection is up.
    pub fn is_connected(&self) -> bool {
        self.link == Link::Up
    }

    /// When [`Input::Tick`] is due next at the latest.
    pub fn next_deadline(&self) -> Option<Instant> {
        let link = match self.link {
            Link::Down { retry_at } => Some(retry_at),
            _ => None,
        };
        let pipeline = match self.pipeline {
            Pipeline::Failed { retry_at } => Some(retry_at),
            Pipeline::Running if !self.pipeline_camera && self.camera_present => {
                self.camera_blocked_until
            }
            _ => None,
        };
        let join = match self.room {
            Room::Joining { since, .. } => Some(since + JOIN_TIMEOUT),
            _ => None,
        };
        [
            link,
            pipeline,
            join,
            self.next_poll,
            self.paused.map(|(_, t)| t),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Handles one input at `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        match input {
            Input::Tick => {}
            Input::SignalingUp => {
                self.link = Link::Up;
                self.link_backoff.reset();
                self.next_poll = Some(now);
            }
            Input::SignalingDown => {
                let wait = self.link_backoff.fail();
                self.link = Link::Down {
                    retry_at: now + wait,
                };
                self.next_poll = None;
                // Read the schedule again before acting on it: it may have changed meanwhile.
                self.schedule.clear();
                // The meeting went with the connection; media stops until it is back.
                if self.room != Room::Out {
                    self.room = Room::Out;
                    self.stop_pipeline(&mut out);
                }
            }
            Input::Schedule(schedule) => self.schedule = schedule,
            Input::Joined(id) => {
                if matches!(self.room, Room::Joining { id: j, .. } if j == id) {
                    self.room = Room::In { id };
                    if self.pipeline == Pipeline::Stopped {
                        self.start_pipeline(now, &mut out);
                    }
                }
            }
            Input::JoinRefused(id, _code) => {
                if matches!(self.room, Room::Joining { id: j, .. } if j == id) {
                    self.room = Room::Out;
                    self.paused = Some((id, now + REFUSED_PAUSE));
                }
            }
            Input::Left => {
                if self.room != Room::Out {
                    self.room = Room::Out;
                    self.stop_pipeline(&mut out);
                }
            }
            Input::Replaced => {
                if let Room::In { id } | Room::Joining { id, .. } = self.room {
                    self.paused = Some((id, now + REPLACED_PAUSE));
                    self.room = Room::Out;
                    self.stop_pipeline(&mut out);
                }
            }
            Input::PipelineRunning => {
                if self.pipeline == Pipeline::Starting {
                    self.pipeline = Pipeline::Running;
                    self.pipeline_backoff.reset();
                }
            }
            Input::PipelineFailed(_) => {
                if self.pipeline != Pipeline::Stopped {
                    let retry_at = if self.pipeline_camera {
                        // The camera, most likely: the test picture at once, so that the room
                        // is still heard and seen to be there; the camera again later.
                        self.camera_blocked_until = Some(now + CAMERA_RETRY);
                        now
                    } else {
                        now + self.pipeline_backoff.fail()
                    };
                    self.pipeline = Pipeline::Failed { retry_at };
                }
            }
            Input::RestartPipeline => {
                if matches!(self.room, Room::In { .. }) {
                    self.start_pipeline(now, &mut out);
                }
            }
            Input::Camera(present) => {
                self.camera_present = present;
                if present {
                    // Plugged in (again): a new chance.
                    self.camera_blocked_until = None;
                }
                let live = matches!(self.pipeline, Pipeline::Starting | Pipeline::Running);
                if matches!(self.room, Room::In { .. })
                    && live
                    && self.pipeline_camera != self.camera_wanted(now)
                {
                    self.start_pipeline(now, &mut out);
                }
            }
        }
        self.decide(now, &mut out);
        out
    }

    fn stop_pipeline(&mut self, out: &mut Vec<Action>) {
        if self.pipeline != Pipeline::Stopped {
            self.pipeline = Pipeline::Stopped;
            out.push(Action::StopPipeline);
        }
    }

    /// What the state and the time call for.
    fn decide(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.paused.is_some_and(|(_, until)| now >= until) {
            self.paused = None;
        }
        match self.link {
            Link::Down { retry_at } if now >= retry_at => {
                self.link = Link::Connecting;
                out.push(Action::Connect);
                return;
            }
            Link::Down { .. } | Link::Connecting => return,
            Link::Up => {}
        }
        if self.next_poll.is_some_and(|t| now >= t) {
            self.next_poll = Some(now + self.poll_every);
            out.push(Action::FetchSchedule);
        }
        let paused = self.paused.map(|(id, _)| id);
        let wanted = self
            .schedule
            .iter()
            .find(|m| m.open && Some(m.id) != paused)
            .map(|m| m.id);
        match self.room {
            Room::Out => {
                if let Some(id) = wanted {
                    self.room = Room::Joining { id, since: now };
                    out.push(Action::Join(id));
                }
            }
            Room::Joining { id, since } => {
                if now >= since + JOIN_TIMEOUT {
                    // No answer: start over (the next decision joins again).
                    self.room = Room::Out;
                    out.push(Action::Leave);
                    self.paused = Some((id, now + self.link_backoff.fail()));
                }
            }
            Room::In { id } => {
                let still_open = self.schedule.iter().any(|m| m.id == id && m.open);
                if !still_open {
                    self.room = Room::Out;
                    out.push(Action::Leave);
                    self.stop_pipeline(out);
                } else if let Pipeline::Failed { retry_at } = self.pipeline
                    && now >= retry_at
                {
                    self.start_pipeline(now, out);
                } else if self.pipeline == Pipeline::Running
                    && !self.pipeline_camera
                    && self.camera_wanted(now)
                {
                    // The camera's wait is over: try it again.
                    self.start_pipeline(now, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLL: Duration = Duration::from_secs(5);

    fn open(id: i64) -> Planned {
        Planned { id, open: true }
    }

    fn closed(id: i64) -> Planned {
        Planned { id, open: false }
    }

    /// A connected agent at `t0`.
    fn connected() -> (Control, Instant) {
        let t0 = Instant::now();
        let mut c = Control::new(t0, POLL);
        assert_eq!(c.handle(t0, Input::Tick), vec![Action::Connect]);
        assert_eq!(
            c.handle(t0, Input::SignalingUp),
            vec![Action::FetchSchedule]
        );
        (c, t0)
    }

    #[test]
    fn it_joins_when_roll_call_opens_and_leaves_when_the_meeting_ends() {
        let (mut c, t0) = connected();
        assert_eq!(c.handle(t0, Input::Schedule(vec![closed(7)])), vec![]);
        let t1 = t0 + POLL;
        assert_eq!(c.handle(t1, Input::Tick), vec![Action::FetchSchedule]);
        assert_eq!(
            c.handle(t1, Input::Schedule(vec![open(7)])),
            vec![Action::Join(7)]
        );
        assert_eq!(
            c.handle(t1, Input::Joined(7)),
            vec![Action::StartPipeline { camera: false }]
        );
        assert_eq!(c.meeting(), Some(7));
        assert_eq!(c.handle(t1, Input::PipelineRunning), vec![]);
        // Ended: it is no longer open (or no longer listed).
        assert_eq!(
            c.handle(t1, Input::Schedule(vec![])),
            vec![Action::Leave, Action::StopPipeline]
        );
        assert_eq!(c.meeting(), None);
    }

    #[test]
    fn signaling_is_retried_with_growing_waits_and_the_meeting_rejoined() {
        let (mut c, t0) = connected();
        c.handle(t0, Input::Schedule(vec![open(3)]));
        c.handle(t0, Input::Joined(3));
        // The server goes away.
        assert_eq!(
            c.handle(t0, Input::SignalingDown),
            vec![Action::StopPipeline]
        );
        let mut t = t0;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let due = c.next_deadline().expect("a retry is planned");
            waits.push(due - t);
            assert_eq!(c.handle(due, Input::Tick), vec![Action::Connect]);
            assert_eq!(c.handle(due, Input::SignalingDown), vec![]);
            t = due;
        }
        assert_eq!(waits[0], FIRST_BACKOFF);
        assert!(waits.windows(2).all(|w| w[1] >= w[0]), "{waits:?}");
        assert_eq!(*waits.last().expect("waits"), MAX_BACKOFF);
        // Back: it reads the schedule and rejoins; the next failure waits briefly again.
        let due = c.next_deadline().expect("retry");
        c.handle(due, Input::Tick);
        assert_eq!(
            c.handle(due, Input::SignalingUp),
            vec![Action::FetchSchedule]
        );
        assert_eq!(
            c.handle(due, Input::Schedule(vec![open(3)])),
            vec![Action::Join(3)]
        );
        c.handle(due, Input::SignalingDown);
        assert_eq!(c.next_deadline(), Some(due + FIRST_BACKOFF));
    }

    #[test]
    fn a_failed_pipeline_is_rebuilt_after_a_wait() {
        let (mut c, t0) = connected();
        c.handle(t0, Input::Schedule(vec![open(1)]));
        c.handle(t0, Input::Joined(1));
        c.handle(t0, Input::PipelineRunning);
        assert_eq!(
            c.handle(t0, Input::PipelineFailed("camera unplugged".into())),
            vec![]
        );
        let due = c.next_deadline().expect("a rebuild is planned");
        assert_eq!(due, t0 + FIRST_BACKOFF);
        assert_eq!(
            c.handle(due, Input::Tick),
            vec![Action::StartPipeline { camera: false }]
        );
        assert_eq!(
            c.handle(due, Input::PipelineFailed("still unplugged".into())),
            vec![]
        );
        assert_eq!(c.next_deadline(), Some(due + FIRST_BACKOFF * 2));
        let due = due + FIRST_BACKOFF * 2;
        assert_eq!(
            c.handle(due, Input::Tick),
            vec![Action::StartPipeline { camera: false }]
        );
        c.handle(due, Input::PipelineRunning);
        assert_eq!(c.meeting(), Some(1), "still in the meeting throughout");
    }

    /// Joined meeting 1 with the camera there and its pipeline running.
    fn in_with_camera() -> (Control, Instant) {
        let (mut c, t0) = connected();
        assert_eq!(c.handle(t0, Input::Camera(true)), vec![]);
        c.handle(t0, Input::Schedule(vec![open(1)]));
        c.handle(t0, Input::Joined(1));
        c.handle(t0, Input::PipelineRunning);
        (c, t0)
    }

    #[test]
    fn a_failing_camera_gives_way_to_the_test_picture_at_once_and_is_tried_again() {
        let (mut c, t0) = connected();
        c.handle(t0, Input::Camera(true));
        c.handle(t0, Input::Schedule(vec![open(1)]));
        assert_eq!(
            c.handle(t0, Input::Joined(1)),
            vec![Action::StartPipeline { camera: true }]
        );
        // The camera's pipeline fails: the test picture at once, no backoff.
        assert_eq!(
            c.handle(t0, Input::PipelineFailed("v4l2src".into())),
            vec![Action::StartPipeline { camera: false }]
        );
        c.handle(t0, Input::PipelineRunning);
        assert!(c.camera_blocked(t0));
        // A minute later, the camera again (ticks meanwhile also read the schedule).
        let due = t0 + CAMERA_RETRY;
        let camera = Action::StartPipeline { camera: true };
        assert!(c.next_deadline().is_some_and(|t| t <= due));
        assert!(
            !c.handle(due - Duration::from_secs(1), Input::Tick)
                .contains(&camera)
        );
        assert!(c.handle(due, Input::Tick).contains(&camera));
        assert!(!c.camera_blocked(due));
    }

    #[test]
    fn a_camera_unplugged_and_back_is_used_again_at_once() {
        let (mut c, t0) = in_with_camera();
        assert_eq!(
            c.handle(t0, Input::Camera(false)),
            vec![Action::StartPipeline { camera: false }]
        );
        c.handle(t0, Input::PipelineRunning);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(
            c.handle(t1, Input::Camera(true)),
            vec![Action::StartPipeline { camera: true }]
        );
        // It fails; replugged, it is tried at once rather than after the minute.
        assert_eq!(
            c.handle(t1, Input::PipelineFailed("v4l2src".into())),
            vec![Action::StartPipeline { camera: false }]
        );
        c.handle(t1, Input::PipelineRunning);
        assert_eq!(c.handle(t1, Input::Camera(false)), vec![]);
        assert_eq!(
            c.handle(t1, Input::Camera(true)),
            vec![Action::StartPipeline { camera: true }]
        );
    }

    #[test]
    fn a_failing_test_picture_waits_longer_each_time() {
        let (mut c, t0) = connected();
        c.handle(t0, Input::Schedule(vec![open(1)]));
        c.handle(t0, Input::Joined(1));
        c.handle(t0, Input::PipelineFailed("no sound card".into()));
        assert_eq!(c.next_deadline(), Some(t0 + FIRST_BACKOFF));
    }

    #[test]
    fn a_technician_restart_rebuilds_only_in_a_meeting() {
        let (mut c, t0) = in_with_camera();
        assert_eq!(
            c.handle(t0, Input::RestartPipeline),
            vec![Action::StartPipeline { camera: true }]
        );
        assert!(!c.camera_blocked(t0), "a restart does not blame the camera");
        c.handle(t0, Input::Left);
        assert_eq!(c.handle(t0, Input::RestartPipeline), vec![]);
    }

    #[test]
    fn camera_changes_outside_a_meeting_start_nothing() {
        let (mut c, t0) = connected();
        assert_eq!(c.handle(t0, Input::Camera(true)), vec![]);
        assert_eq!(c.handle(t0, Input::Camera(false)), vec![]);
    }

    #[test]
    fn a_refused_join_waits_before_trying_again() {
        let (mut c, t0) = connected();
        c.handle(t0, Input::Schedule(vec![open(5)]));
        assert_eq!(
            c.handle(t0, Input::JoinRefused(5, "meeting_locked".into())),
            vec![]
        );
        assert_eq!(
            c.handle(t0 + POLL, Input::Tick),
            vec![Action::FetchSchedule]
        );
        let later = t0 + REFUSED_PAUSE;
        let actions = c.handle(later, Input::Tick);
        assert!(actions.contains(&Action::Join(5)), "{actions:?}");
    }

    #[test]
    fn replaced_by_another_terminal_it_stays_out_for_a_while() {
        let (mut c, t0) = connected();
        c.handle(t0, Input::Schedule(vec![open(9)]));
        c.handle(t0, Input::Joined(9));
        assert_eq!(c.handle(t0, Input::Replaced), vec![Action::StopPipeline]);
        assert!(!c.handle(t0 + POLL, Input::Tick).contains(&Action::Join(9)));
        assert!(
            c.handle(t0 + REPLACED_PAUSE, Input::Tick)
                .contains(&Action::Join(9))
        );
    }

    #[test]
    fn an_unanswered_join_is_given_up_and_tried_again() {
        let (mut c, t0) = connected();
        c.handle(t0, Input::Schedule(vec![open(2)]));
        assert_eq!(c.next_deadline(), Some(t0 + JOIN_TIMEOUT.min(POLL)));
        let late = t0 + JOIN_TIMEOUT;
        let actions = c.handle(late, Input::Tick);
        assert!(actions.contains(&Action::Leave), "{actions:?}");
        let retry = c.next_deadline().expect("retry");
        assert!(retry <= late + FIRST_BACKOFF);
        let actions = c.handle(late + FIRST_BACKOFF, Input::Tick);
        assert!(actions.contains(&Action::Join(2)), "{actions:?}");
    }
}
