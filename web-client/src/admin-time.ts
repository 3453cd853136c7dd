// Vietnam's time (UTC+7, no daylight saving) for the administration pages, whatever time zone
// the administrator's computer is set to: the schedule's `datetime-local` inputs are read as
// Vietnam's wall-clock time and sent with `+07:00`; times from the server are shown in it.

const OFFSET_MS = 7 * 3600 * 1000;
const DAY_MS = 24 * 3600 * 1000;

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** The wall-clock fields of `ms` (Unix milliseconds) in Vietnam. */
function fields(ms: number): { y: number; mo: number; d: number; h: number; mi: number } {
  const t = new Date(ms + OFFSET_MS);
  return {
    y: t.getUTCFullYear(),
    mo: t.getUTCMonth() + 1,
    d: t.getUTCDate(),
    h: t.getUTCHours(),
    mi: t.getUTCMinutes(),
  };
}

/**
 * A `datetime-local` value (`2026-12-03T08:00`, seconds optional) read as Vietnam's time, as
 * RFC 3339 with `+07:00`; null when it is not a real date and time.
 */
export function vnLocalToRfc3339(value: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$/.exec(value.trim());
  if (!m) return null;
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6] ?? '00'].map(Number) as [
    number, number, number, number, number, number,
  ];
  if (h > 23 || mi > 59 || s > 59) return null;
  // Date.UTC rolls 30 February over to March: a date that does not round-trip is not real.
  const probe = new Date(Date.UTC(y, mo - 1, d));
  if (probe.getUTCFullYear() !== y || probe.getUTCMonth() !== mo - 1 || probe.getUTCDate() !== d) return null;
  return `${pad(y, 4)}-${pad(mo)}-${pad(d)}T${pad(h)}:${pad(mi)}:${pad(s)}+07:00`;
}

/** Unix milliseconds of an RFC 3339 time; null when it does not parse. */
export function parseTime(rfc3339: string): number | null {
  const ms = Date.parse(rfc3339);
  return Number.isFinite(ms) ? ms : null;
}

/** `ms` as a `datetime-local` value in Vietnam's time (`2026-12-03T08:00`). */
export function toVnLocal(ms: number): string {
  const f = fields(ms);
  return `${pad(f.y, 4)}-${pad(f.mo)}-${pad(f.d)}T${pad(f.h)}:${pad(f.mi)}`;
}

/** `ms` as a date input's value in Vietnam (`2026-12-03`), `days` later. */
export function vnDay(ms: number, days = 0): string {
  return toVnLocal(ms + days * DAY_MS).slice(0, 10);
}

/** A time from the server as people read it in Vietnam: `03/12/2026 08:00`. */
export function formatVn(rfc3339: string | null): string {
  if (rfc3339 === null) return '';
  const ms = parseTime(rfc3339);
  if (ms === null) return rfc3339;
  const f = fields(ms);
  return `${pad(f.d)}/${pad(f.mo)}/${pad(f.y, 4)} ${pad(f.h)}:${pad(f.mi)}`;
}

/** The scheduling form's default times: tomorrow (in Vietnam) from `startHour` for `hours`. */
export function defaultTimes(nowMs: number, startHour = 8, hours = 2): { start: string; end: string } {
  const day = vnDay(nowMs, 1);
  const start = `${day}T${pad(startHour)}:00`;
  const startMs = Date.parse(`${start}:00+07:00`);
  return { start, end: toVnLocal(startMs + hours * 3600 * 1000) };
}
