// One stay in a meeting: the WebSocket to the bridge and the one RTCPeerConnection.
//
// The client offers once (its own camera and microphone); the server offers every later change
// (receive slots added) and the client answers. Which participant each receive slot carries is
// told by `slots` messages: the SFU switches participants onto a bounded set of m-lines.
// Signaling messages are handled strictly one at a time, in arrival order, on a promise chain.

import { decode, encode } from './protocol';
import type {
  Alert,
  ClientMsg,
  ClientStats,
  FloorState,
  MeetingInfo,
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

export interface SessionHandlers {
  welcome(meeting: MeetingInfo, selfId: number): void;
  participantJoined(id: number, name: string): void;
  participantLeft(id: number): void;
  /** The SFU detected a new dominant speaker. */
  dominantSpeaker(id: number): void;
  /** The video to show in participant `id`'s tile now (null: none arrives for it). */
  remoteVideo(id: number, track: MediaStreamTrack | null): void;
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
    report.forEach((s: { type?: string; kind?: string } & Record<string, unknown>) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'video') return;
      const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0);
      total.frames_decoded += num(s.framesDecoded);
      total.fps += num(s.framesPerSecond);
      total.freezes += num(s.freezeCount);
      total.freeze_seconds += num(s.totalFreezesDuration);
    });
    total.fps = Math.min(total.fps, 2000);
    this.send({ type: 'client_stats', ...total });
  }

  /** Leaves the meeting: tells the server (once welcomed), then closes the connection. */
  leave(): void {
    if (this.ended) return;
    this.ended = true;
    if (this.participantId !== null) this.send({ type: 'leave' });
    clearInterval(this.statsTimer);
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
        for (const p of msg.participants) this.addParticipant(p.id, p.name);
        await this.publish(msg.ice_servers);
        break;
      }
      case 'answer':
        await this.peer().setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        this.published = true;
        if (this.view) this.send({ type: 'view', tiles: this.view });
        break;
      case 'offer': {
        const pc = this.peer();
        await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        this.send({ type: 'answer', sdp: answer.sdp ?? '' });
        break;
      }
      case 'participant_joined':
        this.addParticipant(msg.participant.id, msg.participant.name);
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
      case 'floor':
        this.floor = { holder: msg.holder, queue: msg.queue, muted: msg.muted, locked: msg.locked };
        break;
      case 'roll_call':
        this.rollCall = msg.sites;
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
    for (const track of this.local.getTracks()) {
      const init: RTCRtpTransceiverInit = { direction: 'sendonly' };
      if (track.kind === 'video') init.sendEncodings = CAMERA_LAYERS;
      pc.addTransceiver(track, init);
    }
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

  /** Routes every slot's track to where it shows: a participant's tile, or an audio player. */
  private applySlots(): void {
    this.trackOwner.clear();
    const video = new Map<number, MediaStreamTrack>();
    for (const [mid, track] of this.slotTracks) {
      const slot = this.slots.get(mid);
      if (track.kind === 'audio' && !this.playing.has(mid)) {
        this.playing.add(mid);
        this.on.remoteAudio(mid, track);
      }
      const owner = slot?.participant ?? null;
      if (owner === null || this.gone.has(owner) || owner === this.participantId) continue;
      this.trackOwner.set(track.id, owner);
      if (slot?.kind === 'video' && track.kind === 'video') video.set(owner, track);
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

  private addParticipant(id: number, name: string): void {
    if (id === this.participantId) return;
    this.gone.delete(id);
    this.participants.set(id, name);
    this.on.participantJoined(id, name);
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
    this.playing.clear();
    this.shown.clear();
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}
