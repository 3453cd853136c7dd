// The Scheduling tab: a new meeting's form. The times are typed in Vietnam's time and sent with
// +07:00; the invitation is all sites, a level, a district, or sites ticked in a filtered list.
// What is plainly wrong is refused here; the bridge's refusals are shown next to the form.

import { post } from './api';
import { siteLabel } from './admin-context';
import type { Context, Section } from './admin-context';
import { $, busy, clearErrors, el, fillSelect, levelName, setStatus, showFailure, showInvalid } from './admin-dom';
import { chairs, districts, fieldOfCode, filterSites, formInvite, invitedSites, meetingRequest } from './admin-state';
import type { ScheduleForm } from './admin-state';
import { defaultTimes } from './admin-time';
import { LEVELS } from './admin-types';
import type { Invite, Meeting } from './admin-types';
import { ta } from './i18n-admin';

export function scheduleSection(ctx: Context): Section {
  const form = $<HTMLFormElement>('schedule-form');
  const title = $<HTMLInputElement>('meeting-title');
  const agenda = $<HTMLTextAreaElement>('meeting-agenda');
  const documentRef = $<HTMLInputElement>('meeting-document');
  const chair = $<HTMLSelectElement>('meeting-chair');
  const start = $<HTMLInputElement>('meeting-start');
  const end = $<HTMLInputElement>('meeting-end');
  const mode = $<HTMLSelectElement>('meeting-mode');
  const lastN = $<HTMLInputElement>('meeting-last-n');
  const rollCall = $<HTMLInputElement>('meeting-roll-call');
  const levelSelect = $<HTMLSelectElement>('invite-level-select');
  const districtSelect = $<HTMLSelectElement>('invite-district-select');
  const filter = $<HTMLInputElement>('invite-filter');
  const list = $<HTMLElement>('invite-list');
  const chosenText = $<HTMLElement>('invite-chosen');
  const countText = $<HTMLElement>('invite-count');
  const errors = $<HTMLElement>('schedule-errors');
  const rows: Record<Invite['kind'], HTMLElement | null> = {
    all: null,
    level: $('invite-level-row'),
    district: $('invite-district-row'),
    sites: $('invite-sites-row'),
  };
  const radios = [...form.querySelectorAll<HTMLInputElement>('input[name="invite"]')];
  const fields: Record<string, HTMLElement> = {
    title,
    agenda,
    documentRef,
    chair,
    start,
    end,
    lastN,
    rollCallMinutes: rollCall,
    district: districtSelect,
    sites: filter,
    invite: $('invite-all'),
  };
  /** The sites ticked in the list, kept while the filter hides some. */
  const chosen = new Set<number>();

  const inviteKind = (): string => radios.find((r) => r.checked)?.value ?? 'all';

  function values(): ScheduleForm {
    return {
      title: title.value,
      agenda: agenda.value,
      documentRef: documentRef.value,
      chairId: chair.value,
      start: start.value,
      end: end.value,
      inviteKind: inviteKind(),
      level: levelSelect.value,
      districtId: districtSelect.value,
      siteIds: [...chosen],
      mode: mode.value,
      lastN: lastN.value,
      rollCallMinutes: rollCall.value,
    };
  }

  // ---- the invitation ------------------------------------------------------------------------

  function renderSiteList(): void {
    const shown = filterSites(ctx.data.sites, filter.value);
    list.replaceChildren(
      ...shown.map((s) => {
        const id = `invite-site-${s.id}`;
        const box = el('input', { type: 'checkbox', id, value: String(s.id), 'data-site-id': String(s.id) });
        box.checked = chosen.has(s.id);
        box.addEventListener('change', () => {
          if (box.checked) chosen.add(s.id);
          else chosen.delete(s.id);
          renderCount();
        });
        return el('div', { class: 'admin-check' }, box, el('label', { for: id }, `${siteLabel(s)} · ${levelName(s.level)}`));
      }),
    );
  }

  /** How many sites the invitation names now (the chair's own site included). */
  function renderCount(): void {
    const kind = inviteKind();
    for (const [k, row] of Object.entries(rows)) if (row) row.hidden = k !== kind;
    chosenText.textContent = ta('inviteChosen', { count: chosen.size });
    const invite = formInvite(values());
    const chairSite = ctx.data.people.find((p) => String(p.id) === chair.value)?.site_id ?? null;
    const sites = invite ? invitedSites(invite, ctx.data.sites, chairSite) : null;
    countText.textContent = sites ? ta('inviteWillInvite', { count: sites.size }) : '';
  }

  function renderChoices(): void {
    const people = chairs(ctx.data.people);
    const keep = chair.value;
    fillSelect(chair, people.map((p) => ({ value: String(p.id), label: `${p.display_name} (${p.username})` })));
    if (keep === '' && people.some((p) => p.id === ctx.data.me.id)) chair.value = String(ctx.data.me.id);
    fillSelect(levelSelect, LEVELS.map((l) => ({ value: l, label: levelName(l) })));
    const ds = districts(ctx.data.sites);
    fillSelect(districtSelect, ds.map((d) => ({ value: String(d.id), label: siteLabel(d) })));
    districtSelect.disabled = ds.length === 0;
    if (ds.length === 0) districtSelect.replaceChildren(el('option', { value: '' }, ta('inviteNoDistricts')));
    // Sites removed from the register are no longer chosen.
    const known = new Set(ctx.data.sites.map((s) => s.id));
    for (const id of chosen) if (!known.has(id)) chosen.delete(id);
  }

  function setChosen(ids: number[], on: boolean): void {
    for (const id of ids) {
      if (on) chosen.add(id);
      else chosen.delete(id);
    }
    renderSiteList();
    renderCount();
  }

  // ---- sending -------------------------------------------------------------------------------

  async function schedule(): Promise<void> {
    const request = meetingRequest(values());
    if (!request.ok) return showInvalid(errors, ta('scheduleErrors'), request.errors, fields);
    setStatus(ta('scheduleSending'));
    const r = await post<Meeting>('/api/meetings', request.value);
    if (!r.ok) return showFailure(errors, r.error, fields, fieldOfCode(r.error.code), ta('scheduleErrors'));
    clearErrors(errors, fields);
    setStatus(ta('scheduled', { title: r.value.title, count: r.value.site_ids.length }));
    title.value = '';
    agenda.value = '';
    documentRef.value = '';
  }

  function setDefaultTimes(): void {
    if (start.value !== '' || end.value !== '') return;
    const times = defaultTimes(Date.now());
    start.value = times.start;
    end.value = times.end;
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void busy(form, schedule);
  });
  for (const r of radios) r.addEventListener('change', renderCount);
  for (const s of [chair, levelSelect, districtSelect]) s.addEventListener('change', renderCount);
  filter.addEventListener('input', renderSiteList);
  $<HTMLButtonElement>('invite-select-shown').addEventListener('click', () =>
    setChosen(filterSites(ctx.data.sites, filter.value).map((s) => s.id), true),
  );
  $<HTMLButtonElement>('invite-clear').addEventListener('click', () => setChosen([...chosen], false));

  return {
    render(): void {
      setDefaultTimes();
      renderChoices();
      renderSiteList();
      renderCount();
    },
  };
}
