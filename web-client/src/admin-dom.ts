// What every section of the administration pages shares on the DOM side: looking elements up,
// building them, the status line, errors next to a form, the names of levels, roles and states
// in the current language, and the texts written in admin.html.

import { currentLang } from './i18n';
import { CODE_KEYS } from './admin-state';
import type { FieldError } from './admin-state';
import type { ApiFailure, Level, MeetingState, Role } from './admin-types';
import { ta } from './i18n-admin';
import type { AdminKey } from './i18n-admin';

export function $<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`#${id} is missing from admin.html`);
  return found as T;
}

type Child = Node | string;

/** A new element with attributes (`class`, `aria-*`, `data-*`, ...) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

/** One body row of [`table`]: its cells (the first is the row's header) and its attributes. */
export interface Row {
  cells: Child[];
  attrs?: Record<string, string>;
}

/** A table with a caption (none when empty), a header row and body rows. */
export function table(caption: string, headers: string[], rows: Row[]): HTMLTableElement {
  const head = el('tr', {}, ...headers.map((h) => el('th', { scope: 'col' }, h)));
  const body = rows.map((r) =>
    el('tr', r.attrs ?? {}, ...r.cells.map((c, i) => (i === 0 ? el('th', { scope: 'row' }, c) : el('td', {}, c)))),
  );
  const t = el('table', { class: 'admin-table' }, el('thead', {}, head), el('tbody', {}, ...body));
  if (caption !== '') t.prepend(el('caption', {}, caption));
  return t;
}

export function locale(): string {
  return currentLang() === 'vi' ? 'vi-VN' : 'en-GB';
}

const statusLine = (): HTMLElement => $('status');

/** The page's status line (role=status): what just happened, or what went wrong. */
export function setStatus(text: string, error = false): void {
  const line = statusLine();
  line.textContent = text;
  line.classList.toggle('error', error);
}

/** An API failure in words: the known codes named in the current language, the server's detail after. */
export function describeFailure(error: ApiFailure): string {
  if (error.status === 0) return ta('networkError', { detail: error.message });
  if (error.code === 'bad_response') return ta('badResponse');
  const known = CODE_KEYS[error.code];
  if (known) return error.message ? `${ta(known)} (${error.message})` : ta(known);
  if (error.message) return ta('serverRefused', { message: error.message });
  return ta('serverStatus', { status: error.status });
}

/**
 * Shows `messages` in the error box of a form under `heading`, marks the fields named in
 * `fields` invalid and moves the focus to the first of them; an empty list clears it all.
 */
export function showFormErrors(
  box: HTMLElement,
  heading: string,
  messages: { field: string | null; text: string }[],
  fields: Readonly<Record<string, HTMLElement>>,
): void {
  for (const f of Object.values(fields)) f.removeAttribute('aria-invalid');
  box.hidden = messages.length === 0;
  if (messages.length === 0) {
    box.replaceChildren();
    return;
  }
  box.replaceChildren(el('p', {}, heading), el('ul', {}, ...messages.map((m) => el('li', {}, m.text))));
  const invalid = messages.map((m) => (m.field === null ? undefined : fields[m.field])).filter((f) => f !== undefined);
  for (const f of invalid) f.setAttribute('aria-invalid', 'true');
  invalid[0]?.focus();
}

/** Client-side errors in the shape `showFormErrors` takes. */
export function fieldMessages(errors: readonly FieldError[]): { field: string; text: string }[] {
  return errors.map((e) => ({ field: e.field, text: ta(e.key, e.vars) }));
}

/** Replaces a `<select>`'s options, keeping its value when it is still offered. */
export function fillSelect(select: HTMLSelectElement, options: { value: string; label: string }[]): void {
  const keep = select.value;
  select.replaceChildren(...options.map((o) => el('option', { value: o.value }, o.label)));
  if (options.some((o) => o.value === keep)) select.value = keep;
}

const LEVEL_KEYS: Record<Level, AdminKey> = {
  province: 'levelProvince',
  district: 'levelDistrict',
  commune: 'levelCommune',
};
const ROLE_KEYS: Record<Role, AdminKey> = {
  administrator: 'roleAdministrator',
  chair: 'roleChair',
  technician: 'roleTechnician',
  participant: 'roleParticipant',
};
const STATE_KEYS: Record<MeetingState, AdminKey> = {
  scheduled: 'stateScheduled',
  roll_call: 'stateRollCall',
  in_progress: 'stateInProgress',
  ended: 'stateEnded',
  cancelled: 'stateCancelled',
};

export const levelName = (level: Level): string => ta(LEVEL_KEYS[level]);
export const roleName = (role: Role): string => ta(ROLE_KEYS[role]);
export const stateName = (state: MeetingState): string => ta(STATE_KEYS[state]);

/**
 * The texts written in admin.html, in the current language: `data-ta` (the text),
 * `data-ta-placeholder`, `data-ta-label` (aria-label).
 */
export function translateStatic(root: ParentNode = document): void {
  for (const node of root.querySelectorAll<HTMLElement>('[data-ta]')) {
    node.textContent = ta(node.dataset.ta as AdminKey);
  }
  for (const node of root.querySelectorAll<HTMLElement>('[data-ta-placeholder]')) {
    node.setAttribute('placeholder', ta(node.dataset.taPlaceholder as AdminKey));
  }
  for (const node of root.querySelectorAll<HTMLElement>('[data-ta-label]')) {
    node.setAttribute('aria-label', ta(node.dataset.taLabel as AdminKey));
  }
}

/** Client-side errors in a form's error box under `heading`, the first of them in the status line. */
export function showInvalid(
  box: HTMLElement,
  heading: string,
  errors: readonly FieldError[],
  fields: Readonly<Record<string, HTMLElement>>,
): void {
  const messages = fieldMessages(errors);
  showFormErrors(box, heading, messages, fields);
  setStatus(`${heading} ${messages.map((m) => m.text).join(' ')}`, true);
}

/** A server refusal in a form's error box (at `field` when it names one) and the status line. */
export function showFailure(
  box: HTMLElement,
  error: ApiFailure,
  fields: Readonly<Record<string, HTMLElement>>,
  field: string | null = null,
  heading: string = ta('formErrors'),
): void {
  const text = describeFailure(error);
  showFormErrors(box, heading, [{ field, text }], fields);
  setStatus(`${heading} ${text}`, true);
}

/** Empties a form's error box and unmarks its fields. */
export function clearErrors(box: HTMLElement, fields: Readonly<Record<string, HTMLElement>>): void {
  showFormErrors(box, '', [], fields);
}

/** Runs `work` with the form's submit button disabled, so that a slow answer is not sent twice. */
export async function busy(form: HTMLFormElement, work: () => Promise<void>): Promise<void> {
  const button = form.querySelector<HTMLButtonElement>('button[type="submit"]');
  if (button?.disabled) return;
  if (button) button.disabled = true;
  try {
    await work();
  } finally {
    if (button) button.disabled = false;
  }
}
