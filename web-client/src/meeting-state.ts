// The decisions of the meeting page, as pure functions of what the server said and what the
// page measured: who is shown large, who fits in the gallery, what the SFU is asked to send,
// which of its simulcast layers this page sends, how good the connection is, when to restart
// ICE, and what the chair's panel lists. No DOM, no WebRTC: tested with Vitest.

import type { FloorState, ParticipantInfo, RollCallEntry, ViewTile } from './protocol';

// ---- who is shown where ------------------------------------------------------------------

export interface StageInput {
  /** This page's own participant id (never shown from the network). */
  self: number | null;
  /** Everyone else in the meeting, in joining order. */
  people: ParticipantInfo[];
  /** The dominant speaker, as the SFU announced. */
  dominant: number | null;
  floor: FloorState | null;
  /** The participant whose presentation arrives now. */
  presenting: number | null;
  /** Audio and the chair only. */
  lowBandwidth: boolean;
  /** How many tiles the gallery has room for. */
  galleryCapacity: number;
}

export interface Stage {
  /** The presentation shown largest, if any (a participant id). */
  content: number | null;
  /** Shown large: the chair, and the site speaking (spotlight, floor holder, speaker). */
  main: number[];
  /** Small tiles, in joining order, only as many as fit. */
  gallery: number[];
  /** Participants not shown for want of room. */
  hidden: number;
}

/** The latest participant of `site` (a site that reconnected has a newer id). */
function participantOfSite(people: ParticipantInfo[], site: number | null): number | null {
  if (site === null) return null;
  for (let i = people.length - 1; i >= 0; i--) {
    const p = people[i];
    if (p?.site === site) return p.id;
  }
  return null;
}

/**
 * Who is shown large and who in the gallery. Large: the chair and the one the meeting listens
 * to now (the spotlighted site, else the floor holder, else the dominant speaker); the gallery
 * gets the others that fit. In low-bandwidth mode only the chair (or, without a chair, that
 * one person) is shown. A presentation is always shown, largest.
 */
export function planStage(input: StageInput): Stage {
  const others = input.people.filter((p) => p.id !== input.self);
  const known = new Set(others.map((p) => p.id));
  const chair = others.find((p) => p.chair)?.id ?? null;
  const featured =
    participantOfSite(others, input.floor?.spotlight ?? null) ??
    participantOfSite(others, input.floor?.holder ?? null) ??
    (input.dominant !== null && known.has(input.dominant) ? input.dominant : null);
  const main = [...new Set([chair, featured].filter((id): id is number => id !== null))];
  const content = input.presenting !== null && known.has(input.presenting) ? input.presenting : null;
  if (input.lowBandwidth) {
    return { content, main: main.slice(0, 1), gallery: [], hidden: others.length - Math.min(1, main.length) };
  }
  const rest = others.map((p) => p.id).filter((id) => !main.includes(id));
  const room = Math.max(0, input.galleryCapacity);
  return { content, main, gallery: rest.slice(0, room), hidden: Math.max(0, rest.length - room) };
}

/**
 * How many gallery tiles of at least `minWidth` px fit in `rows` rows of `width` px, with `gap`
 * px between tiles (as the CSS grid lays them out).
 */
export function galleryCapacity(width: number, minWidth: number, gap: number, rows: number): number {
  if (!(width > 0) || !(minWidth > 0)) return 0;
  const columns = Math.floor((width + gap) / (minWidth + gap));
  return Math.max(1, columns) * Math.max(0, Math.floor(rows));
}

/**
 * What the SFU should send: each shown camera at the height it is shown, in device pixels.
 * The presentation is not listed (everyone gets it), nor is anyone not shown.
 */
export function viewTiles(heights: Map<number, number>): ViewTile[] {
  return [...heights]
    .filter(([, h]) => Number.isFinite(h) && h > 0)
    .map(([participant, h]) => ({ participant, height: Math.round(h) }))
    .sort((a, b) => a.participant - b.participant);
}

// ---- what this client sends -----------------------------------------------------------------

/**
 * The `active` flags of a sender's encodings (lowest layer first, as `current` has them) when
 * the SFU asks for only the lowest `layers` (`send_layers`); null when they already are so and
 * nothing needs setting. The lowest layer is never turned off, whatever `layers` says: a
 * single-encoding track (the presentation) always stays on.
 */
export function activeLayers(current: readonly boolean[], layers: number): boolean[] | null {
  const keep = Number.isFinite(layers) ? Math.max(1, Math.floor(layers)) : current.length;
  const next = current.map((_, i) => i < keep);
  return next.every((on, i) => on === current[i]) ? null : next;
}

// ---- connection quality ------------------------------------------------------------------

export type QualityLevel = 'good' | 'fair' | 'poor' | 'unknown';

export interface LinkFigures {
  /** Round-trip time to the bridge, ms (null: not measured yet). */
  rttMs: number | null;
  /** Share of incoming packets lost over the last period, 0 to 1 (null: nothing arrived). */
  loss: number | null;
}

/** The indicator's level: poor above 10% loss or 400 ms, fair above 2% or 150 ms. */
export function qualityLevel(f: LinkFigures): QualityLevel {
  if (f.rttMs === null && f.loss === null) return 'unknown';
  const loss = f.loss ?? 0;
  const rtt = f.rttMs ?? 0;
  if (loss > 0.1 || rtt > 400) return 'poor';
  if (loss > 0.02 || rtt > 150) return 'fair';
  return 'good';
}

/** Loss over a period from two cumulative counts of (received, lost); null if none arrived. */
export function lossBetween(
  before: { received: number; lost: number },
  after: { received: number; lost: number },
): number | null {
  const received = after.received - before.received;
  const lost = Math.max(0, after.lost - before.lost);
  if (received + lost <= 0) return null;
  return lost / (received + lost);
}

// ---- reconnecting --------------------------------------------------------------------------

export type IceAction = 'none' | 'restart' | 'rejoin';

/** How long ICE may stay disconnected before the page asks for a restart. */
export const DISCONNECTED_GRACE_MS = 2000;
/** At most one restart in this long. */
export const RESTART_EVERY_MS = 8000;
/** Restarts that did not bring the connection back before the page joins afresh. */
export const MAX_RESTARTS = 3;

/**
 * When to restart ICE and when to give up and join again: fed the ICE connection state as it
 * changes and on a timer, it answers what to do now.
 */
export class IceWatch {
  private badSince: number | null = null;
  private lastRestart: number | null = null;
  private restarts = 0;

  update(state: RTCIceConnectionState, now: number): IceAction {
    if (state === 'connected' || state === 'completed') {
      this.badSince = null;
      this.restarts = 0;
      return 'none';
    }
    if (state !== 'disconnected' && state !== 'failed') {
      return 'none';
    }
    this.badSince ??= now;
    const due = state === 'failed' || now - this.badSince >= DISCONNECTED_GRACE_MS;
    const spaced = this.lastRestart === null || now - this.lastRestart >= RESTART_EVERY_MS;
    if (!due || !spaced) return 'none';
    this.lastRestart = now;
    if (this.restarts >= MAX_RESTARTS) return 'rejoin';
    this.restarts += 1;
    return 'restart';
  }
}

// ---- the chair's panel ------------------------------------------------------------------

export interface RollCallSummary {
  invited: number;
  joined: number;
  connected: number;
  offline: number;
}

export function summarize(entries: RollCallEntry[]): RollCallSummary {
  const count = (p: RollCallEntry['presence']) => entries.filter((e) => e.presence === p).length;
  return {
    invited: entries.length,
    joined: count('joined'),
    connected: count('connected'),
    offline: count('offline'),
  };
}

/** Roll call in the order a chair reads it: in the meeting first, then connected, then offline. */
export function rollCallOrder(entries: RollCallEntry[]): RollCallEntry[] {
  const rank = { joined: 0, connected: 1, offline: 2 } as const;
  return [...entries].sort((a, b) => rank[a.presence] - rank[b.presence] || a.name.localeCompare(b.name, 'vi'));
}

/** A site's name from roll call, else from whoever takes part for it, else its number. */
export function siteName(site: number, rollCall: RollCallEntry[], people: ParticipantInfo[]): string {
  return (
    rollCall.find((e) => e.site === site)?.name ??
    people.find((p) => p.site === site)?.name ??
    `#${site}`
  );
}

/** What this page's own site may do with the floor now. */
export type FloorButton = 'request' | 'withdraw' | 'holding' | 'none';

export function floorButton(floor: FloorState | null, mySite: number | null): FloorButton {
  if (floor === null || mySite === null) return 'none';
  if (floor.holder === mySite) return 'holding';
  return floor.queue.includes(mySite) ? 'withdraw' : 'request';
}

// ---- home page -----------------------------------------------------------------------------

export interface ListedMeeting {
  id: number;
  title: string;
  state: string;
  starts_at: string | null;
  ends_at: string | null;
}

/** Meetings one may enter now (roll call open or started, or always open like the demo). */
export function joinable(m: ListedMeeting): boolean {
  return m.state === 'roll_call' || m.state === 'in_progress' || (m.starts_at === null && m.state !== 'ended');
}

/** Upcoming meetings, soonest first, those one may enter now before the rest. */
export function upcomingOrder(meetings: ListedMeeting[]): ListedMeeting[] {
  const start = (m: ListedMeeting) => (m.starts_at ? Date.parse(m.starts_at) : 0);
  return meetings
    .filter((m) => m.state !== 'ended' && m.state !== 'cancelled')
    .sort((a, b) => Number(joinable(b)) - Number(joinable(a)) || start(a) - start(b));
}

/** A meeting's time as a person in Vietnam reads it (UTC+7), e.g. `08:00 03/12/2026`. */
export function vietnamTime(iso: string | null): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return '';
  const d = new Date(t + 7 * 3600_000);
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getUTCHours())}:${two(d.getUTCMinutes())} ${two(d.getUTCDate())}/${two(d.getUTCMonth() + 1)}/${d.getUTCFullYear()}`;
}
