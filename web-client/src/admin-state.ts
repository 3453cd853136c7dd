// The administration pages' logic without the DOM, so that it is tested directly: the request
// bodies built from form values and checked before they are sent (the same limits as the
// bridge), the site filter, which sites an invitation names, API errors, the history's two
// lists and the quality report's rows.

import type { AdminKey } from './i18n-admin';
import { parseTime, vnLocalToRfc3339 } from './admin-time';
import { LEVELS, ROLES } from './admin-types';
import type {
  Invite,
  Level,
  Meeting,
  MeetingLine,
  MeetingRequest,
  MeetingState,
  Mode,
  NewPerson,
  NewSite,
  Person,
  PersonChange,
  ReportLine,
  Role,
  RollCallEntry,
  Site,
} from './admin-types';

// The bridge's limits (signaling/src/meetings.rs, sites.rs, auth.rs).
export const MAX_TITLE_BYTES = 200;
export const MAX_AGENDA_BYTES = 20_000;
export const MAX_SITE_NAME_BYTES = 200;
export const MAX_FIELD_BYTES = 256;
export const MAX_DURATION_DAYS = 7;
export const MAX_LAST_N = 512;
export const MAX_ROLL_CALL_MINUTES = 24 * 60;
export const MAX_IMPORT_BYTES = 2 * 1024 * 1024;

/** A value the form cannot send, named by its field, with the text to show. */
export interface FieldError {
  field: string;
  key: AdminKey;
  vars?: Record<string, string | number>;
}

/** A request body ready to send, or why not. */
export type Checked<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

function checked<T>(value: T, errors: FieldError[]): Checked<T> {
  return errors.length === 0 ? { ok: true, value } : { ok: false, errors };
}

export function utf8Bytes(text: string): number {
  return new TextEncoder().encode(text).length;
}

const isLevel = (s: string): s is Level => (LEVELS as readonly string[]).includes(s);
const isRole = (s: string): s is Role => (ROLES as readonly string[]).includes(s);

/** A whole number from `min` to `max` typed into a field; null otherwise. */
function wholeNumber(text: string, min: number, max: number): number | null {
  if (!/^\d+$/.test(text.trim())) return null;
  const n = Number(text.trim());
  return n >= min && n <= max ? n : null;
}

/** A positive id from a `<select>`'s value; null for none. */
function idOf(text: string): number | null {
  const n = Number(text);
  return text !== '' && Number.isInteger(n) && n > 0 ? n : null;
}

// ---- sites ---------------------------------------------------------------------------------

/** Text as the filter compares it: lower case, without Vietnamese accents (`Xã Đông` → `xa dong`). */
export function searchKey(text: string): string {
  return text
    .normalize('NFD')
    .replace(/\p{M}/gu, '')
    .replace(/đ/g, 'd')
    .replace(/Đ/g, 'D')
    .toLowerCase()
    .trim();
}

/** The sites whose name or code holds every word of `query`, accents ignored. */
export function filterSites(sites: readonly Site[], query: string): Site[] {
  const words = searchKey(query).split(/\s+/).filter(Boolean);
  if (words.length === 0) return [...sites];
  return sites.filter((s) => {
    const hay = `${searchKey(s.name)} ${searchKey(s.code)}`;
    return words.every((w) => hay.includes(w));
  });
}

/** The level a parent of a `level` site has (none for a province). */
export function parentLevel(level: Level): Level | null {
  return level === 'commune' ? 'district' : level === 'district' ? 'province' : null;
}

/** The sites that may be the parent of a new `level` site. */
export function parentChoices(sites: readonly Site[], level: Level): Site[] {
  const want = parentLevel(level);
  return want === null ? [] : sites.filter((s) => s.level === want);
}

export function districts(sites: readonly Site[]): Site[] {
  return sites.filter((s) => s.level === 'district');
}

/** The name of a site's parent, or '' for none (or one not in the list). */
export function parentName(site: Site, byId: ReadonlyMap<number, Site>): string {
  return site.parent_id === null ? '' : (byId.get(site.parent_id)?.name ?? `#${site.parent_id}`);
}

/** The add-a-site form as typed. */
export interface SiteForm {
  code: string;
  name: string;
  level: string;
  parentCode: string;
  terminalId: string;
}

/** The `POST /api/sites` body, checked as the bridge checks it. */
export function siteRequest(form: SiteForm): Checked<NewSite> {
  const errors: FieldError[] = [];
  const code = form.code.trim();
  const name = form.name.trim();
  const level = isLevel(form.level) ? form.level : 'commune';
  if (!/^[A-Za-z0-9._-]{1,32}$/.test(code)) errors.push({ field: 'code', key: 'errSiteCode' });
  if (name === '' || utf8Bytes(name) > MAX_SITE_NAME_BYTES) {
    errors.push({ field: 'name', key: 'errSiteName', vars: { max: MAX_SITE_NAME_BYTES } });
  }
  const parent = form.parentCode.trim();
  if (parentLevel(level) !== null && parent === '') errors.push({ field: 'parent', key: 'errSiteParent' });
  const body: NewSite = { code, name, level };
  if (parentLevel(level) !== null && parent !== '') body.parent_code = parent;
  const terminal = form.terminalId.trim();
  if (terminal !== '') body.terminal_id = terminal;
  return checked(body, errors);
}

/** What the bridge's refusal of an import says: its line (the header is 1) and the reason. */
export function importErrorLine(message: string): { line: number; message: string } | null {
  const m = /^line (\d+): ([\s\S]*)$/.exec(message);
  return m ? { line: Number(m[1]), message: m[2] ?? '' } : null;
}

/** Line `line` (1 is the first) of a file's text, without its line ending; null past the end. */
export function lineOf(text: string, line: number): string | null {
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  return line >= 1 && line <= lines.length ? (lines[line - 1] ?? null) : null;
}

// ---- people --------------------------------------------------------------------------------

/** The person form as typed (the password empty when editing means: keep it). */
export interface PersonForm {
  username: string;
  displayName: string;
  role: string;
  siteId: string;
  password: string;
  disabled: boolean;
}

function checkPassword(password: string, errors: FieldError[]): void {
  if ([...password].length < 8 || utf8Bytes(password) > MAX_FIELD_BYTES) {
    errors.push({ field: 'password', key: 'errPassword' });
  }
}

function checkDisplayName(name: string, errors: FieldError[]): void {
  if (name === '' || utf8Bytes(name) > MAX_FIELD_BYTES) {
    errors.push({ field: 'displayName', key: 'errDisplayName', vars: { max: MAX_FIELD_BYTES } });
  }
}

/** The `POST /api/people` body, checked as the bridge checks it. */
export function personRequest(form: PersonForm): Checked<NewPerson> {
  const errors: FieldError[] = [];
  const username = form.username.trim();
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(username)) errors.push({ field: 'username', key: 'errUsername' });
  const displayName = form.displayName.trim();
  checkDisplayName(displayName, errors);
  checkPassword(form.password, errors);
  const body: NewPerson = {
    username,
    display_name: displayName,
    role: isRole(form.role) ? form.role : 'participant',
    password: form.password,
  };
  const site = idOf(form.siteId);
  if (site !== null) body.site_id = site;
  return checked(body, errors);
}

/** The `PUT /api/people/{id}` body: only what differs from `current` (empty: nothing to do). */
export function personChange(current: Person, form: PersonForm): Checked<PersonChange> {
  const errors: FieldError[] = [];
  const change: PersonChange = {};
  const displayName = form.displayName.trim();
  if (displayName !== current.display_name) {
    checkDisplayName(displayName, errors);
    change.display_name = displayName;
  }
  if (isRole(form.role) && form.role !== current.role) change.role = form.role;
  const site = idOf(form.siteId);
  if (site !== current.site_id) {
    if (site === null) change.clear_site = true;
    else change.site_id = site;
  }
  if (form.password !== '') {
    checkPassword(form.password, errors);
    change.password = form.password;
  }
  if (form.disabled) change.disabled = true;
  return checked(change, errors);
}

/** The people who may chair a meeting. */
export function chairs(people: readonly Person[]): Person[] {
  return people.filter((p) => p.role === 'chair' || p.role === 'administrator');
}

// ---- scheduling ----------------------------------------------------------------------------

/** The scheduling form as typed. */
export interface ScheduleForm {
  title: string;
  agenda: string;
  documentRef: string;
  /** '' for the caller. */
  chairId: string;
  /** `datetime-local` values, Vietnam's time. */
  start: string;
  end: string;
  inviteKind: string;
  level: string;
  districtId: string;
  siteIds: readonly number[];
  mode: string;
  lastN: string;
  rollCallMinutes: string;
}

/** The invitation the form describes; null while it lacks its district. */
export function formInvite(form: ScheduleForm): Invite | null {
  switch (form.inviteKind) {
    case 'level':
      return { kind: 'level', level: isLevel(form.level) ? form.level : 'commune' };
    case 'district': {
      const id = idOf(form.districtId);
      return id === null ? null : { kind: 'district', site_id: id };
    }
    case 'sites':
      return { kind: 'sites', site_ids: [...new Set(form.siteIds)] };
    default:
      return { kind: 'all' };
  }
}

function checkInvite(form: ScheduleForm, errors: FieldError[]): Invite {
  const invite = formInvite(form);
  if (invite === null) {
    errors.push({ field: 'district', key: 'errNoDistrict' });
    return { kind: 'all' };
  }
  if (invite.kind === 'sites' && invite.site_ids.length === 0) errors.push({ field: 'sites', key: 'errNoSites' });
  return invite;
}

function checkTimes(form: ScheduleForm, errors: FieldError[]): { start: string; end: string } {
  const start = vnLocalToRfc3339(form.start);
  const end = vnLocalToRfc3339(form.end);
  if (start === null) errors.push({ field: 'start', key: 'errStart' });
  if (end === null) errors.push({ field: 'end', key: 'errEnd' });
  if (start !== null && end !== null) {
    const length = (parseTime(end) ?? 0) - (parseTime(start) ?? 0);
    if (length <= 0) errors.push({ field: 'end', key: 'errEndBeforeStart' });
    else if (length > MAX_DURATION_DAYS * 24 * 3600 * 1000) {
      errors.push({ field: 'end', key: 'errTooLong', vars: { days: MAX_DURATION_DAYS } });
    }
  }
  return { start: start ?? '', end: end ?? '' };
}

function checkTexts(form: ScheduleForm, errors: FieldError[]): void {
  const title = form.title.trim();
  if (title === '') errors.push({ field: 'title', key: 'errTitle' });
  else if (utf8Bytes(title) > MAX_TITLE_BYTES) {
    errors.push({ field: 'title', key: 'errTitleLong', vars: { max: MAX_TITLE_BYTES } });
  }
  if (utf8Bytes(form.agenda) > MAX_AGENDA_BYTES) {
    errors.push({ field: 'agenda', key: 'errAgendaLong', vars: { max: MAX_AGENDA_BYTES } });
  }
  if (utf8Bytes(form.documentRef.trim()) > MAX_TITLE_BYTES) {
    errors.push({ field: 'documentRef', key: 'errDocumentLong', vars: { max: MAX_TITLE_BYTES } });
  }
}

/** The `POST /api/meetings` body, checked first for what is plainly wrong. */
export function meetingRequest(form: ScheduleForm): Checked<MeetingRequest> {
  const errors: FieldError[] = [];
  checkTexts(form, errors);
  const { start, end } = checkTimes(form, errors);
  const invite = checkInvite(form, errors);
  const lastN = wholeNumber(form.lastN, 0, MAX_LAST_N);
  if (lastN === null) errors.push({ field: 'lastN', key: 'errLastN', vars: { max: MAX_LAST_N } });
  const rollCall = wholeNumber(form.rollCallMinutes, 0, MAX_ROLL_CALL_MINUTES);
  if (rollCall === null) {
    errors.push({ field: 'rollCallMinutes', key: 'errRollCall', vars: { max: MAX_ROLL_CALL_MINUTES } });
  }
  const body: MeetingRequest = {
    title: form.title.trim(),
    agenda: form.agenda,
    document_ref: form.documentRef.trim(),
    starts_at: start,
    ends_at: end,
    invite,
    mode: (form.mode === 'open' ? 'open' : 'floor') satisfies Mode,
    last_n: lastN ?? 0,
    roll_call_minutes: rollCall ?? 0,
  };
  const chair = idOf(form.chairId);
  if (chair !== null) body.chair_id = chair;
  return checked(body, errors);
}

/**
 * The sites `invite` names, as the bridge works them out (meetings.rs `invited`), plus the
 * chair's own site; null for an invitation the bridge would refuse (no such district).
 */
export function invitedSites(
  invite: Invite,
  sites: readonly Site[],
  chairSite: number | null = null,
): Set<number> | null {
  let ids: number[];
  switch (invite.kind) {
    case 'all':
      ids = sites.map((s) => s.id);
      break;
    case 'level':
      ids = sites.filter((s) => s.level === invite.level).map((s) => s.id);
      break;
    case 'district': {
      const district = sites.find((s) => s.id === invite.site_id && s.level === 'district');
      if (!district) return null;
      ids = sites.filter((s) => s.id === district.id || s.parent_id === district.id).map((s) => s.id);
      break;
    }
    case 'sites': {
      const known = new Set(sites.map((s) => s.id));
      if (invite.site_ids.some((id) => !known.has(id))) return null;
      ids = invite.site_ids;
      break;
    }
  }
  const out = new Set(ids);
  if (chairSite !== null) out.add(chairSite);
  return out;
}

// ---- errors --------------------------------------------------------------------------------

/** An error response's body as the bridge sends it (`{code, message}`), or the best guess. */
export { parseApiFailure } from './api';

/** The text key that names a known error code in words (the server's message follows it). */
export const CODE_KEYS: Readonly<Record<string, AdminKey>> = {
  end_before_start: 'codeEndBeforeStart',
  invalid_chair: 'codeInvalidChair',
  unknown_site: 'codeUnknownSite',
  duplicate_site: 'codeDuplicateSite',
  invalid_invite: 'codeInvalidInvite',
  invalid_body: 'codeInvalidBody',
  forbidden: 'codeForbidden',
  duplicate_username: 'codeDuplicateUsername',
  last_administrator: 'codeLastAdministrator',
  storage_unavailable: 'codeStorageUnavailable',
  invalid_period: 'codeInvalidPeriod',
  invalid_sites: 'codeInvalidSites',
};

/** The scheduling form's field a server error is about, so that it is marked there. */
export function fieldOfCode(code: string): string | null {
  switch (code) {
    case 'end_before_start':
      return 'end';
    case 'invalid_chair':
      return 'chair';
    case 'unknown_site':
    case 'duplicate_site':
    case 'invalid_invite':
      return 'invite';
    default:
      return null;
  }
}

// ---- history -------------------------------------------------------------------------------

/** One meeting of the history. */
export interface HistoryEntry {
  id: number;
  title: string;
  state: MeetingState;
  startsAt: string | null;
  endsAt: string | null;
  invited: number;
  /** Invited sites that attended (known for meetings begun in the period asked). */
  attended: number | null;
}

/**
 * The history's two lists: upcoming and running meetings (the schedule, soonest first), and
 * the meetings held in the period that are over, latest first. The schedule holds every
 * meeting not yet over, and the statistics every one begun and not cancelled, so a held
 * meeting missing from the schedule has ended.
 */
export function historyGroups(
  schedule: readonly Meeting[],
  held: readonly MeetingLine[],
): { upcoming: HistoryEntry[]; past: HistoryEntry[] } {
  const heldById = new Map(held.map((m) => [m.id, m]));
  const upcoming = schedule.map((m) => ({
    id: m.id,
    title: m.title,
    state: m.state,
    startsAt: m.starts_at,
    endsAt: m.ends_at,
    invited: m.site_ids.length,
    attended: heldById.get(m.id)?.attended ?? null,
  }));
  const running = new Set(schedule.map((m) => m.id));
  const past = held
    .filter((m) => !running.has(m.id))
    .map((m): HistoryEntry => {
      const start = parseTime(m.starts_at);
      return {
        id: m.id,
        title: m.title,
        state: 'ended',
        startsAt: m.starts_at,
        endsAt: start === null ? null : new Date(start + Math.round(m.hours * 3600) * 1000).toISOString(),
        invited: m.invited,
        attended: m.attended,
      };
    })
    .sort((a, b) => (parseTime(b.startsAt ?? '') ?? 0) - (parseTime(a.startsAt ?? '') ?? 0) || b.id - a.id);
  return { upcoming, past };
}

/** Roll call in numbers. */
export function rollCallCounts(entries: readonly RollCallEntry[]): Record<RollCallEntry['presence'], number> {
  const counts = { joined: 0, connected: 0, offline: 0 };
  for (const e of entries) counts[e.presence] += 1;
  return counts;
}

/** `seconds` as `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** The quality table's cells for one site, in the columns' order. */
export interface QualityRow {
  site: number;
  name: string;
  cells: string[];
}

export const NO_VALUE = '—';

/** The stored quality report as table rows: times as `h:mm:ss`, shares in percent. */
export function qualityRows(report: readonly ReportLine[], locale: string): QualityRow[] {
  const one = new Intl.NumberFormat(locale, { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const whole = new Intl.NumberFormat(locale, { maximumFractionDigits: 0 });
  const percent = (v: number | null): string => (v === null ? NO_VALUE : `${one.format(v * 100)} %`);
  const number = (v: number | null): string => (v === null ? NO_VALUE : whole.format(v));
  return report.map((l) => ({
    site: l.site,
    name: l.name,
    cells: [
      formatDuration(l.connected_seconds),
      percent(l.loss),
      percent(l.worst_loss),
      percent(l.loss_after),
      number(l.rtt_ms),
      number(l.kbps_in),
      whole.format(l.freezes),
    ],
  }));
}
