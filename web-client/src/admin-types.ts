// The shapes of the REST API the administration pages use, as the bridge sends them
// (signaling/src/sites.rs, auth.rs, meetings.rs, reports.rs, stats.rs, live.rs).

export type Level = 'province' | 'district' | 'commune';
export type Role = 'administrator' | 'chair' | 'technician' | 'participant';
export type Mode = 'floor' | 'open';
export type MeetingState = 'scheduled' | 'roll_call' | 'in_progress' | 'ended' | 'cancelled';

export const LEVELS: readonly Level[] = ['province', 'district', 'commune'];
export const ROLES: readonly Role[] = ['administrator', 'chair', 'technician', 'participant'];

/** `GET /api/sites`: a meeting room. */
export interface Site {
  id: number;
  code: string;
  name: string;
  level: Level;
  /** The district of a commune, the province of a district. */
  parent_id: number | null;
  terminal_id: string | null;
  /** Whether a device credential has been issued. */
  has_credential: boolean;
}

/** `POST /api/sites` body. */
export interface NewSite {
  code: string;
  name: string;
  level: Level;
  parent_code?: string;
  terminal_id?: string;
}

/** `GET /api/people`: a person with an account. */
export interface Person {
  id: number;
  username: string;
  display_name: string;
  role: Role;
  site_id: number | null;
}

/** `GET /api/me`. */
export interface Me {
  person: Person | null;
  site_id: number | null;
}

/** `POST /api/people` body. */
export interface NewPerson {
  username: string;
  display_name: string;
  role: Role;
  site_id?: number;
  password: string;
}

/** `PUT /api/people/{id}` body: absent fields stay as they are. */
export interface PersonChange {
  display_name?: string;
  role?: Role;
  site_id?: number;
  clear_site?: boolean;
  password?: string;
  disabled?: boolean;
}

/** Which sites a meeting invites. */
export type Invite =
  | { kind: 'all' }
  | { kind: 'level'; level: Level }
  | { kind: 'district'; site_id: number }
  | { kind: 'sites'; site_ids: number[] };

/** `POST /api/meetings` body. */
export interface MeetingRequest {
  title: string;
  agenda: string;
  document_ref: string;
  chair_id?: number;
  /** RFC 3339 with Vietnam's offset, e.g. `2026-12-03T08:00:00+07:00`. */
  starts_at: string;
  ends_at: string;
  invite: Invite;
  mode: Mode;
  last_n: number;
  roll_call_minutes: number;
}

/** `GET /api/schedule`, `POST /api/meetings`: a meeting. */
export interface Meeting {
  id: number;
  title: string;
  agenda: string;
  document_ref: string;
  chair_id: number | null;
  starts_at: string | null;
  ends_at: string | null;
  state: MeetingState;
  mode: Mode;
  last_n: number;
  roll_call_minutes: number;
  locked: boolean;
  invite: Invite;
  site_ids: number[];
  revision: number;
}

/** `GET /api/stats`: one meeting held in the period. */
export interface MeetingLine {
  id: number;
  title: string;
  /** Planned start, RFC 3339 in Vietnam's time. */
  starts_at: string;
  /** Planned length, hours. */
  hours: number;
  invited: number;
  attended: number;
  trips_saved: number;
}

/** `GET /api/stats` (the part the history uses). */
export interface Stats {
  from: string;
  to: string;
  per_meeting: MeetingLine[];
}

/** `GET /api/meetings/{id}/quality`: one site's line of the stored report. */
export interface ReportLine {
  site: number;
  code: string;
  name: string;
  connected_seconds: number;
  /** Shares 0 to 1. */
  loss: number | null;
  worst_loss: number;
  loss_after: number | null;
  rtt_ms: number | null;
  worst_rtt_ms: number;
  kbps_in: number | null;
  lowest_kbps_in: number | null;
  freezes: number;
}

/** `GET /api/meetings/{id}/quality` (the part the history uses). */
export interface MeetingQuality {
  report: ReportLine[];
}

/** `GET /api/meetings/{id}/roll-call`: one invited site now (as in the live protocol). */
export type { RollCallEntry } from './protocol';

/** `POST /api/sites/import`. */
export interface Imported {
  imported: number;
}

export type { ApiFailure } from './api';
