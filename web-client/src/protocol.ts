// The live-session protocol (mirrors signaling/src/protocol.rs): versioned JSON over WebSocket.

export const VERSION = 1;

export interface ParticipantInfo {
  id: number;
  name: string;
  /** The site it takes part for (scheduled meetings). */
  site?: number;
  /** Whether it is the meeting's chair (shown large). */
  chair?: boolean;
}

/** The floor of a scheduled meeting: who holds it, who asks, who is muted, whether locked. */
export interface FloorState {
  holder: number | null;
  queue: number[];
  muted: number[];
  locked: boolean;
  /** The site the chair shows to everyone large. */
  spotlight: number | null;
  /** The participant presenting a document or screen. */
  presenter: number | null;
}

/** A site over the last sampling period (signaling/src/monitor.rs). */
export interface SiteSample {
  site: number;
  /** End of the period, Unix seconds. */
  at: number;
  /** Share of what the site sent missing before retransmission, 0 to 1. */
  loss: number;
  loss_after: number;
  rtt_ms: number | null;
  jitter_ms: number;
  kbps_in: number;
  kbps_out: number;
  /** Frames per second of its video; null without video. */
  fps: number | null;
  freezes: number;
  estimate_kbps: number | null;
  grade: 'good' | 'fair' | 'poor';
}

/** An alert that fired (firing) or stopped. */
export interface Alert {
  kind: 'offline' | 'loss' | 'no_video' | 'cpu';
  meeting: number;
  site: number;
  /** When the condition began, Unix seconds. */
  since: number;
  firing: boolean;
}

/** One invited site in roll call. */
export interface RollCallEntry {
  site: number;
  name: string;
  presence: 'offline' | 'connected' | 'joined';
  audio: boolean;
  video: boolean;
  /** How many simulcast layers of its video arrive. */
  video_layers: number;
}

export interface MeetingInfo {
  id: number;
  title: string;
}

/** A tile the client shows: whose video, and how many device pixels high. */
export interface ViewTile {
  participant: number;
  height: number;
}

/**
 * One receive slot: an m-line (by mid) onto which the SFU switches whichever participant this
 * client should get now. A meeting of 213 sites needs only a few audio slots (the loudest
 * voices) and one video slot per tile shown.
 */
export interface SlotInfo {
  mid: string;
  kind: 'audio' | 'video';
  /** Whose media the slot carries now; null when idle. */
  participant: number | null;
  /** It carries the participant's presentation (document, screen), not its camera. */
  content?: boolean;
}

/** A floor-control action. */
export type FloorAction = 'request' | 'withdraw' | 'grant' | 'refuse' | 'revoke';

export type ClientMsg =
  | { type: 'join'; meeting: number; name: string }
  | { type: 'offer'; sdp: string }
  | { type: 'answer'; sdp: string }
  | { type: 'candidate'; candidate: string }
  | { type: 'view'; tiles: ViewTile[] }
  | { type: 'leave' }
  | { type: 'ice_restart' }
  | { type: 'floor'; action: FloorAction; site?: number }
  | { type: 'mute'; site: number; muted: boolean }
  | { type: 'mute_all'; muted: boolean }
  | { type: 'lock'; locked: boolean }
  | { type: 'spotlight'; site: number | null }
  | { type: 'share'; on: boolean }
  | { type: 'watch'; meeting: number }
  | ({ type: 'client_stats' } & ClientStats);

/** What this browser decodes of the meeting's video, added up over its tiles. */
export interface ClientStats {
  frames_decoded: number;
  /** Frames decoded per second now, over all tiles. */
  fps: number;
  freezes: number;
  freeze_seconds: number;
}

export type ServerMsg =
  | {
      type: 'welcome';
      participant_id: number;
      meeting: MeetingInfo;
      participants: ParticipantInfo[];
      ice_servers: RTCIceServer[];
    }
  | { type: 'answer'; sdp: string }
  | { type: 'offer'; sdp: string }
  | { type: 'participant_joined'; participant: ParticipantInfo }
  | { type: 'participant_left'; id: number }
  | { type: 'speakers'; dominant: number; recent: number[] }
  | { type: 'slots'; slots: SlotInfo[] }
  /**
   * Send only the lowest `layers` (at least 1) simulcast layers of the track this client
   * publishes on its own m-line `mid`: nobody wants more of it now. Sent when it changes; a new
   * session starts with every layer on.
   */
  | { type: 'send_layers'; mid: string; layers: number }
  | ({ type: 'floor' } & FloorState)
  | { type: 'roll_call'; sites: RollCallEntry[] }
  | { type: 'quality'; sites: SiteSample[]; alerts: Alert[] }
  | { type: 'error'; code: string; message: string };

/** Serializes a client message with the version field. */
export function encode(msg: ClientMsg): string {
  return JSON.stringify({ v: VERSION, ...msg });
}

/** Parses a server message; null for anything this client does not understand. */
export function decode(text: string): ServerMsg | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const msg = value as { v?: unknown; type?: unknown };
  if (msg.v !== VERSION || typeof msg.type !== 'string') return null;
  return value as ServerMsg;
}
