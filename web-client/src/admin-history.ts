// The History tab: meetings coming up or running (the schedule) and the ones held in a period
// (the statistics), each with its state, times, attendance, the attendance and quality CSV
// files, its quality report as a table and, while it is open, its roll call.

import { get } from './api';
import type { Section } from './admin-context';
import { $, clearErrors, el, locale, setStatus, showFailure, stateName, table } from './admin-dom';
import { historyGroups, qualityRows, rollCallCounts } from './admin-state';
import type { HistoryEntry } from './admin-state';
import { formatVn, vnDay } from './admin-time';
import type { Meeting, MeetingQuality, ReportLine, RollCallEntry, Stats } from './admin-types';
import { ta } from './i18n-admin';
import type { AdminKey } from './i18n-admin';

/** The history's default period: the last 90 days. */
const DEFAULT_DAYS = 90;

/** What a meeting's entry shows below it, once loaded. */
type Detail = { kind: 'quality'; report: ReportLine[] } | { kind: 'roll-call'; entries: RollCallEntry[] };

const QUALITY_COLUMNS: AdminKey[] = [
  'qcolSite',
  'qcolConnected',
  'qcolLoss',
  'qcolWorstLoss',
  'qcolLossAfter',
  'qcolRtt',
  'qcolKbps',
  'qcolFreezes',
];

export function historySection(): Section {
  const form = $<HTMLFormElement>('history-form');
  const from = $<HTMLInputElement>('history-from');
  const to = $<HTMLInputElement>('history-to');
  const errors = $<HTMLElement>('history-errors');
  const upcomingList = $<HTMLUListElement>('history-upcoming');
  const pastList = $<HTMLUListElement>('history-past');
  const fields = { from, to };

  let groups: { upcoming: HistoryEntry[]; past: HistoryEntry[] } = { upcoming: [], past: [] };
  const details = new Map<number, Detail>();

  function renderDetail(entry: HistoryEntry, detail: Detail): HTMLElement {
    if (detail.kind === 'roll-call') {
      const counts = rollCallCounts(detail.entries);
      const presence: Record<RollCallEntry['presence'], AdminKey> = {
        joined: 'presenceJoined',
        connected: 'presenceConnected',
        offline: 'presenceOffline',
      };
      return el(
        'div',
        { class: 'admin-detail', 'data-detail': 'roll-call' },
        el('p', {}, ta('rollCallSummary', counts)),
        el('ul', {}, ...detail.entries.map((e) => el('li', { 'data-presence': e.presence }, `${e.name}: ${ta(presence[e.presence])}`))),
      );
    }
    if (detail.report.length === 0) {
      return el('div', { class: 'admin-detail', 'data-detail': 'quality' }, el('p', {}, ta('noQuality')));
    }
    const rows = qualityRows(detail.report, locale()).map((r) => ({
      attrs: { 'data-site-id': String(r.site) },
      cells: [r.name, ...r.cells],
    }));
    const caption = ta('qualityCaption', { title: entry.title });
    return el(
      'div',
      { class: 'admin-detail admin-scroll', 'data-detail': 'quality' },
      table(caption, QUALITY_COLUMNS.map((k) => ta(k)), rows),
    );
  }

  async function toggle(entry: HistoryEntry, kind: Detail['kind']): Promise<void> {
    if (details.get(entry.id)?.kind === kind) {
      details.delete(entry.id);
      renderLists();
      return;
    }
    const base = `/api/meetings/${entry.id}`;
    if (kind === 'quality') {
      const r = await get<MeetingQuality>(`${base}/quality`);
      if (!r.ok) return showFailure(errors, r.error, fields);
      details.set(entry.id, { kind, report: r.value.report });
    } else {
      const r = await get<RollCallEntry[]>(`${base}/roll-call`);
      if (!r.ok) return showFailure(errors, r.error, fields);
      details.set(entry.id, { kind, entries: r.value });
    }
    renderLists();
    document.getElementById(`${kind}-${entry.id}`)?.focus();
  }

  function button(entry: HistoryEntry, kind: Detail['kind']): HTMLButtonElement {
    const open = details.get(entry.id)?.kind === kind;
    const text =
      kind === 'quality'
        ? ta(open ? 'hideQuality' : 'showQuality')
        : ta(open ? 'hideRollCall' : 'showRollCall');
    // The accessible name starts with the visible text and says which meeting it is about.
    const label = `${text}: ${entry.title}`;
    const b = el('button', { type: 'button', id: `${kind}-${entry.id}`, 'aria-expanded': String(open), 'aria-label': label }, text);
    b.addEventListener('click', () => void toggle(entry, kind));
    return b;
  }

  function item(entry: HistoryEntry): HTMLLIElement {
    const times =
      entry.startsAt === null
        ? ta('noTimes')
        : ta('meetingTimes', { start: formatVn(entry.startsAt), end: formatVn(entry.endsAt) });
    const attendance =
      entry.attended === null
        ? ta('invitedCount', { count: entry.invited })
        : ta('attendedCount', { attended: entry.attended, invited: entry.invited });
    const base = `/api/meetings/${entry.id}`;
    const actions = el(
      'div',
      { class: 'admin-actions' },
      el('a', { href: `${base}/attendance.csv`, download: `attendance-${entry.id}.csv` }, ta('attendanceCsv')),
      el('a', { href: `${base}/quality.csv`, download: `meeting-${entry.id}-quality.csv` }, ta('qualityCsv')),
      button(entry, 'quality'),
    );
    if (entry.state === 'roll_call' || entry.state === 'in_progress') actions.append(button(entry, 'roll-call'));
    const li = el(
      'li',
      { class: 'admin-meeting', 'data-meeting-id': String(entry.id), 'data-state': entry.state },
      el('h4', {}, entry.title, ' ', el('span', { class: `admin-state admin-state-${entry.state}` }, stateName(entry.state))),
      el('p', {}, times, ' · ', attendance),
      actions,
    );
    const detail = details.get(entry.id);
    if (detail) li.append(renderDetail(entry, detail));
    return li;
  }

  function fill(list: HTMLUListElement, entries: HistoryEntry[], empty: AdminKey): void {
    list.replaceChildren(...(entries.length === 0 ? [el('li', { class: 'admin-empty' }, ta(empty))] : entries.map(item)));
  }

  function renderLists(): void {
    fill(upcomingList, groups.upcoming, 'noUpcoming');
    fill(pastList, groups.past, 'noPast');
  }

  async function load(): Promise<void> {
    setStatus(ta('historyLoading'));
    const period = new URLSearchParams({ from: from.value, to: to.value });
    const [schedule, stats] = await Promise.all([get<Meeting[]>('/api/schedule'), get<Stats>(`/api/stats?${period}`)]);
    clearErrors(errors, fields);
    groups = historyGroups(schedule.ok ? schedule.value : [], stats.ok ? stats.value.per_meeting : []);
    details.clear();
    renderLists();
    if (!schedule.ok) showFailure(errors, schedule.error, fields);
    else if (!stats.ok) showFailure(errors, stats.error, fields, 'from');
    else setStatus(ta('historyLoaded', { upcoming: groups.upcoming.length, past: groups.past.length }));
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void load();
  });

  return {
    render(): void {
      if (from.value === '') from.value = vnDay(Date.now(), -DEFAULT_DAYS);
      if (to.value === '') to.value = vnDay(Date.now());
      renderLists();
    },
    shown(): void {
      void load();
    },
  };
}
