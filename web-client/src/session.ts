// One stay in a meeting: the WebSocket to the bridge and the one RTCPeerConnection.
//
// The client offers once: its microphone, its camera (simulcast) and a third, second-video
// m-line for a presentation (a document or the screen), idle until it presents. The server
// offers every later change (receive slots added, an ICE restart) and the client answers. Which participant each receive slot carries is
// told by `slots` messages: the SFU switches participants onto a bounded set of m-lines.
// The SFU also says how many of the camera's simulcast layers anyone wants (`send_layers`): the
// layers above are turned off at the sender, and kept so over new tracks and renegotiations.
// Signaling messages are handled strictly one at a time, in arrival order, on a promise chain.

import { IceWatch, activeLayers, lossBetween, qualityLevel } from './meeting-state';
import type { QualityLevel } from './meeting-state';
import { decode, encode } from './protocol';
import type {
  Alert,
  ClientMsg,
  ClientStats,
  FloorState,
  MeetingInfo,
  ParticipantInfo,
  RollCallEntry,
  ServerMsg,
  SiteSample,
  SlotInfo,
  ViewTile,
} from './protocol';

/** How often the browser tells the bridge what it decodes. */
const STATS_EVERY_MS = 5000;

/**
 * The simulcast layers the camera is sent in, lowest first (the order the SFU relies on). The
 * SFU forwards each receiver the smallest layer that fills the tile it shows.
 */
const CAMERA_LAYERS: RTCRtpEncodingParameters[] = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 120_000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 400_000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_200_000 },
];

/** A presentation is sent at most this fast: text stays sharp, the link is spared. */
const CONTENT_MAX_BITRATE = 1_000_000;

/** How often the ICE state is looked at (a restart waits for a grace period). */
const ICE_CHECK_EVERY_MS = 1000;

/**
 * Errors after which the session is over whatever else is queued: handled as they arrive, so
 * that the socket closing right after them is not mistaken for a lost connection.
 */
const FINAL_ERRORS = new Set(['meeting_ended', 'replaced']);

export interface SessionHandlers {
  welcome(meeting: MeetingInfo, selfId: number): void;
  participantJoined(who: ParticipantInfo): void;
  participantLeft(id: number): void;
  /** The SFU detected a new dominant speaker. */
  dominantSpeaker(id: number): void;
  /** The video to show in participant `id`'s tile now (null: none arrives for it). */
  remoteVideo(id: number, track: MediaStreamTrack | null): void;
  /** The presentation arriving now and whose it is (null: none). */
  content(owner: number | null, track: MediaStreamTrack | null): void;
  /** The floor, spotlight and presenter changed. */
  floor(state: FloorState): void;
  /** Roll call (chair, administrators, technicians). */
  rollCall(entries: RollCallEntry[]): void;
  /** The connection's quality, measured every few seconds. */
  quality(level: QualityLevel): void;
  /** ICE restarts did not bring the connection back: join afresh. */
  rejoin(): void;
  /** A new audio slot: play it (the SFU decides whose voice it carries). */
  remoteAudio(mid: string, track: MediaStreamTrack): void;
  connectionState(state: RTCPeerConnectionState): void;
  serverError(code: string, message: string): void;
  signalingFailed(detail: string): void;
  /** The WebSocket closed without the user leaving. */
  disconnected(): void;
}

/** What tests (and curious developers) can read from `window.bridge`, updated live. */
export interface BridgeDebug {
  readonly pc: RTCPeerConnection | null;
  readonly participantId: number | null;
  readonly participants: Map<number, string>;
  readonly trackOwner: Map<string, number>;
  readonly slots: Map<string, SlotInfo>;
  readonly floor: FloorState | null;
  readonly rollCall: RollCallEntry[];
  readonly quality: Map<number, SiteSample>;
  readonly alerts: Map<string, Alert>;
  readonly contentOwner: number | null;
  readonly linkQuality: QualityLevel;
  readonly iceRestarts: number;
  /** What the SFU last asked: own mid → how many of its lowest simulcast layers to send. */
  readonly sendLayers: Map<string, number>;
  restartIce(): void;
}

declare global {
  interface Window {
    bridge?: BridgeDebug;
  }
}

export class Session implements BridgeDebug {
  pc: RTCPeerConnection | null = null;
  participantId: number | null = null;
  /** Everyone else in the meeting: id → display name. */
  readonly participants = new Map<number, string>();
  /** Remote track id → the participant whose media it carries now. */
  readonly trackOwner = new Map<string, number>();
  /** Receive slots by mid, as the server last described them. */
  readonly slots = new Map<string, SlotInfo>();
  /** The floor of a scheduled meeting, as last announced (the chair's screens use it). */
  floor: FloorState | null = null;
  /** Roll call, for the chair and technicians. */
  rollCall: RollCallEntry[] = [];
  /** Each site's latest quality sample (chair and technicians). */
  readonly quality = new Map<number, SiteSample>();
  /** Alerts firing, by `kind:site`. */
  readonly alerts = new Map<string, Alert>();
  /** Whose presentation arrives now. */
  contentOwner: number | null = null;
  /** The latest connection-quality level. */
  linkQuality: QualityLevel = 'unknown';
  /** ICE restarts asked for in this session. */
  iceRestarts = 0;
  /** Own mid → how many of its lowest layers the SFU wants sent (absent: all of them). */
  readonly sendLayers = new Map<string, number>();
  /** Layer changes, one at a time: Chrome refuses overlapping getParameters/setParameters. */
  private layersChain: Promise<void> = Promise.resolve();
  private readonly iceWatch = new IceWatch();
  private readonly iceTimer: ReturnType<typeof setInterval>;
  private lastCounts = { received: 0, lost: 0 };
  private audioSender: RTCRtpSender | null = null;
  private cameraSender: RTCRtpSender | null = null;
  private contentSender: RTCRtpSender | null = null;
  private contentShown: MediaStreamTrack | null = null;
  private contentShownOwner: number | null = null;
  /** The camera is sent (off: the camera m-line carries nothing). */
  private cameraOn = true;
  /** Remote tracks by the mid of their transceiver. */
  private readonly slotTracks = new Map<string, MediaStreamTrack>();
  /** Audio slots already handed to the page. */
  private readonly playing = new Set<string>();
  /** The video track each participant's tile shows now. */
  private readonly shown = new Map<number, MediaStreamTrack>();

  private readonly ws: WebSocket;
  private chain: Promise<void> = Promise.resolve();
  private readonly gone = new Set<number>();
  private ended = false;
  /** The view to send once the SFU knows this endpoint (after its answer), and since. */
  private view: ViewTile[] | null = null;
  private published = false;
  /** Reports what this browser decodes to the bridge every few seconds (for technicians). */
  private readonly statsTimer: ReturnType<typeof setInterval>;

  constructor(
    private readonly meeting: number,
    private readonly name: string,
    private readonly local: MediaStream,
    private readonly on: SessionHandlers,
  ) {
    window.bridge = this;
    const url = new URL('ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.ws = new WebSocket(url);
    this.ws.onopen = () => this.send({ type: 'join', meeting: this.meeting, name: this.name });
    this.ws.onmessage = (ev: MessageEvent) => {
      const msg = typeof ev.data === 'string' ? decode(ev.data) : null;
      if (!msg) {
        console.warn('bridge: ignoring a message this client does not understand', ev.data);
        return;
      }
      if (msg.type === 'error' && FINAL_ERRORS.has(msg.code)) {
        if (!this.ended) this.on.serverError(msg.code, msg.message);
        return;
      }
      this.chain = this.chain
        .then(() => this.handle(msg))
        .catch((err: unknown) => {
          console.error('bridge: signaling failed', msg.type, err);
          if (!this.ended) this.on.signalingFailed(describe(err));
        });
    };
    this.ws.onclose = () => {
      if (!this.ended) {
        this.ended = true;
        this.closePeer();
        this.on.disconnected();
      }
    };
    this.statsTimer = setInterval(() => void this.reportStats(), STATS_EVERY_MS);
    this.iceTimer = setInterval(() => this.checkIce(), ICE_CHECK_EVERY_MS);
  }

  // ---- what the page asks ----------------------------------------------------------------

  /** Floor control, moderation and presenting: the server answers with a `floor` message. */
  command(msg: Extract<ClientMsg, { type: 'floor' | 'mute' | 'mute_all' | 'lock' | 'spotlight' | 'share' }>): void {
    this.send(msg);
  }

  /** The microphone on or off (off: silence is sent, so turning it on is instant). */
  setMicrophone(on: boolean): void {
    for (const track of this.local.getAudioTracks()) track.enabled = on;
  }

  /**
   * The camera on or off (off: nothing is sent). Also before the connection is made. Off takes
   * the track away and leaves the layers' `active` flags alone, so it wins over whatever the SFU
   * allows, and on sends exactly the layers it allows.
   */
  async setCamera(on: boolean): Promise<void> {
    this.cameraOn = on;
    const track = this.local.getVideoTracks()[0] ?? null;
    await this.sendTrack(this.cameraSender, on ? track : null);
  }

  /** Sends `track` instead of the current microphone or camera (another device). */
  async replaceDevice(track: MediaStreamTrack): Promise<void> {
    const sender = track.kind === 'audio' ? this.audioSender : this.cameraSender;
    if (track.kind === 'video' && !this.cameraOn) return;
    await this.sendTrack(sender, track);
  }

  /**
   * Starts presenting `track` (a document drawn on a canvas, or the screen), or stops (null).
   * `tell`: also tell the server (not when the server already ended it).
   */
  async present(track: MediaStreamTrack | null, tell = true): Promise<void> {
    if (!this.contentSender) throw new Error('not connected yet');
    if (track && 'contentHint' in track) track.contentHint = 'detail';
    await this.sendTrack(this.contentSender, track);
    if (tell) this.send({ type: 'share', on: track !== null });
  }

  /**
   * Sends `track` (null: nothing) on `sender`, then the layers the SFU allows on it again:
   * browsers keep a sender's parameters over a new track, but this does not rely on it.
   */
  private async sendTrack(sender: RTCRtpSender | null, track: MediaStreamTrack | null): Promise<void> {
    if (!sender) return;
    await sender.replaceTrack(track);
    const mid = this.pc?.getTransceivers().find((t) => t.sender === sender)?.mid;
    if (mid) await this.applyLayers(mid);
  }

  /**
   * Turns the encodings of the sender on own m-line `mid` on or off as the SFU last asked (the
   * lowest always on). Queued behind earlier changes; a failure is logged, the meeting goes on.
   */
  private applyLayers(mid: string): Promise<void> {
    const apply = async () => {
      const layers = this.sendLayers.get(mid);
      if (layers === undefined || this.ended) return;
      const sender = this.pc?.getTransceivers().find((t) => t.mid === mid)?.sender;
      if (!sender) {
        console.warn('bridge: send_layers for an m-line this client does not send on', mid);
        return;
      }
      const params = sender.getParameters();
      const active = activeLayers(params.encodings.map((e) => e.active !== false), layers);
      if (!active) return;
      params.encodings.forEach((e, i) => (e.active = active[i] ?? true));
      await sender.setParameters(params);
    };
    this.layersChain = this.layersChain.then(apply).catch((err: unknown) => {
      console.error('bridge: could not change the layers sent on', mid, err);
    });
    return this.layersChain;
  }

  /**
   * Applies the SFU's word on layers again after a negotiation: Chrome sets the flags from the
   * answer's simulcast line when it applies one (all on here), whatever setParameters said.
   */
  private async reapplyLayers(): Promise<void> {
    await Promise.all([...this.sendLayers.keys()].map((mid) => this.applyLayers(mid)));
  }

  /** Asks the server for new ICE credentials (also done by itself when the link breaks). */
  restartIce(): void {
    this.iceRestarts += 1;
    this.send({ type: 'ice_restart' });
  }

  private checkIce(): void {
    if (this.ended) {
      clearInterval(this.iceTimer);
      return;
    }
    const pc = this.pc;
    if (!pc || !this.published) return;
    switch (this.iceWatch.update(pc.iceConnectionState, Date.now())) {
      case 'restart':
        console.info('bridge: the connection broke off: restarting ICE');
        this.restartIce();
        break;
      case 'rejoin':
        console.info('bridge: ICE restarts did not help: joining again');
        this.on.rejoin();
        break;
      case 'none':
        break;
    }
  }

  /** Adds up the inbound video streams' decoding figures and sends them. */
  private async reportStats(): Promise<void> {
    if (this.ended) {
      clearInterval(this.statsTimer);
      return;
    }
    if (!this.pc || this.participantId === null) return;
    const report = await this.pc.getStats();
    const total: ClientStats = { frames_decoded: 0, fps: 0, freezes: 0, freeze_seconds: 0 };
    const counts = { received: 0, lost: 0 };
    let rttMs: number | null = null;
    const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
    report.forEach((s: { type?: string; kind?: string } & Record<string, unknown>) => {
      if (s.type === 'candidate-pair' && s.nominated && typeof s.currentRoundTripTime === 'number') {
        rttMs = s.currentRoundTripTime * 1000;
      }
      if (s.type !== 'inbound-rtp') return;
      counts.received += num(s.packetsReceived);
      counts.lost += num(s.packetsLost);
      if (s.kind !== 'video') return;
      total.frames_decoded += num(s.framesDecoded);
      total.fps += num(s.framesPerSecond);
      total.freezes += num(s.freezeCount);
      total.freeze_seconds += num(s.totalFreezesDuration);
    });
    total.fps = Math.min(total.fps, 2000);
    this.send({ type: 'client_stats', ...total });
    const loss = lossBetween(this.lastCounts, counts);
    this.lastCounts = counts;
    this.linkQuality = qualityLevel({ rttMs, loss });
    this.on.quality(this.linkQuality);
  }

  /** Leaves the meeting: tells the server (once welcomed), then closes the connection. */
  leave(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.participantId !== null) this.send({ type: 'leave' });
    clearInterval(this.statsTimer);
    clearInterval(this.iceTimer);
    this.ws.close(1000);
    this.closePeer();
  }

  /** Tells the SFU which tiles are shown and how big, so it forwards only that. */
  setView(tiles: ViewTile[]): void {
    this.view = tiles;
    if (this.published) this.send({ type: 'view', tiles });
  }

  private send(msg: ClientMsg): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(encode(msg));
  }

  private async handle(msg: ServerMsg): Promise<void> {
    if (this.ended) return;
    switch (msg.type) {
      case 'welcome': {
        this.participantId = msg.participant_id;
        this.on.welcome(msg.meeting, msg.participant_id);
        for (const p of msg.participants) this.addParticipant(p);
        await this.publish(msg.ice_servers);
        break;
      }
      case 'answer':
        await this.peer().setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        this.published = true;
        if (this.view) this.send({ type: 'view', tiles: this.view });
        await this.reapplyLayers();
        break;
      case 'offer': {
        const pc = this.peer();
        await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        this.send({ type: 'answer', sdp: answer.sdp ?? '' });
        await this.reapplyLayers();
        break;
      }
      case 'participant_joined':
        this.addParticipant(msg.participant);
        break;
      case 'participant_left':
        this.removeParticipant(msg.id);
        break;
      case 'speakers':
        this.on.dominantSpeaker(msg.dominant);
        break;
      case 'slots':
        this.slots.clear();
        for (const slot of msg.slots) this.slots.set(slot.mid, slot);
        this.applySlots();
        break;
      case 'send_layers':
        this.sendLayers.set(msg.mid, msg.layers);
        await this.applyLayers(msg.mid);
        break;
      case 'floor':
        this.floor = {
          holder: msg.holder,
          queue: msg.queue,
          muted: msg.muted,
          locked: msg.locked,
          spotlight: msg.spotlight ?? null,
          presenter: msg.presenter ?? null,
        };
        this.on.floor(this.floor);
        break;
      case 'roll_call':
        this.rollCall = msg.sites;
        this.on.rollCall(msg.sites);
        break;
      case 'quality':
        for (const sample of msg.sites) this.quality.set(sample.site, sample);
        for (const alert of msg.alerts) {
          const key = `${alert.kind}:${alert.site}`;
          if (alert.firing) this.alerts.set(key, alert);
          else this.alerts.delete(key);
        }
        break;
      case 'error':
        this.on.serverError(msg.code, msg.message);
        break;
      default:
        console.warn('bridge: ignoring unknown message', msg);
    }
  }

  /** Creates the peer connection and sends the client's one offer. */
  private async publish(iceServers: RTCIceServer[]): Promise<void> {
    // One transport for audio and video: gather and check candidates once.
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle' });
    this.pc = pc;
    pc.onicecandidate = (ev) => {
      const candidate = ev.candidate?.candidate;
      if (candidate) this.send({ type: 'candidate', candidate });
    };
    pc.onconnectionstatechange = () => {
      if (!this.ended) this.on.connectionState(pc.connectionState);
    };
    pc.ontrack = (ev) => this.onTrack(ev);
    // Always the three m-lines, in this order, whatever devices there are: the SFU takes a
    // client's second video m-line for its presentation.
    const audio = this.local.getAudioTracks()[0] ?? 'audio';
    // A camera turned off before connecting sends nothing from the start.
    const camera = (this.cameraOn && this.local.getVideoTracks()[0]) || 'video';
    this.audioSender = pc.addTransceiver(audio, { direction: 'sendonly' }).sender;
    this.cameraSender = pc.addTransceiver(camera, {
      direction: 'sendonly',
      sendEncodings: CAMERA_LAYERS,
    }).sender;
    this.contentSender = pc.addTransceiver('video', {
      direction: 'sendonly',
      sendEncodings: [{ maxBitrate: CONTENT_MAX_BITRATE }],
    }).sender;
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.send({ type: 'offer', sdp: offer.sdp ?? '' });
  }

  private onTrack(ev: RTCTrackEvent): void {
    const mid = ev.transceiver.mid;
    if (mid === null) {
      console.warn('bridge: a remote track without a mid', ev.track.id);
      return;
    }
    this.slotTracks.set(mid, ev.track);
    this.applySlots();
  }

  /**
   * Routes every slot's track to where it shows: a participant's tile, the presentation, or an
   * audio player.
   */
  private applySlots(): void {
    this.trackOwner.clear();
    const video = new Map<number, MediaStreamTrack>();
    let content: [number, MediaStreamTrack] | null = null;
    for (const [mid, track] of this.slotTracks) {
      const slot = this.slots.get(mid);
      if (track.kind === 'audio' && !this.playing.has(mid)) {
        this.playing.add(mid);
        this.on.remoteAudio(mid, track);
      }
      const owner = slot?.participant ?? null;
      if (owner === null || this.gone.has(owner) || owner === this.participantId) continue;
      this.trackOwner.set(track.id, owner);
      if (slot?.kind !== 'video' || track.kind !== 'video') continue;
      if (slot.content) content = [owner, track];
      else video.set(owner, track);
    }
    const [contentOwner, contentTrack] = content ?? [null, null];
    // A freed slot may carry the next presenter's content on the same track: the owner counts.
    if (contentTrack !== this.contentShown || contentOwner !== this.contentShownOwner) {
      this.contentShown = contentTrack;
      this.contentShownOwner = contentOwner;
      this.contentOwner = contentOwner;
      this.on.content(contentOwner, contentTrack);
    }
    for (const [owner, track] of video) {
      if (this.shown.get(owner) !== track) this.on.remoteVideo(owner, track);
    }
    for (const owner of this.shown.keys()) {
      if (!video.has(owner) && !this.gone.has(owner)) this.on.remoteVideo(owner, null);
    }
    this.shown.clear();
    for (const [owner, track] of video) this.shown.set(owner, track);
  }

  private addParticipant(who: ParticipantInfo): void {
    if (who.id === this.participantId) return;
    this.gone.delete(who.id);
    this.participants.set(who.id, who.name);
    this.on.participantJoined(who);
  }

  private removeParticipant(id: number): void {
    this.gone.add(id);
    this.participants.delete(id);
    for (const [track, owner] of this.trackOwner) {
      if (owner === id) this.trackOwner.delete(track);
    }
    this.shown.delete(id);
    this.on.participantLeft(id);
  }

  private peer(): RTCPeerConnection {
    if (!this.pc) throw new Error('no peer connection yet');
    return this.pc;
  }

  private closePeer(): void {
    this.pc?.close();
    this.participants.clear();
    this.trackOwner.clear();
    this.slots.clear();
    this.slotTracks.clear();
    this.sendLayers.clear();
    this.playing.clear();
    this.shown.clear();
    this.contentShown = null;
    this.contentShownOwner = null;
    this.contentOwner = null;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
