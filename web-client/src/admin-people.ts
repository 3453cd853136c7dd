// The People tab: everyone with an account, a person added, a person changed (name, role,
// site, password, or the account disabled) with the same form.

import { post, put } from './api';
import { siteLabel } from './admin-context';
import type { Context, Section } from './admin-context';
import { $, busy, clearErrors, el, fillSelect, roleName, setStatus, showFailure, showInvalid, table } from './admin-dom';
import { personChange, personRequest } from './admin-state';
import type { PersonForm } from './admin-state';
import { ROLES } from './admin-types';
import type { Person } from './admin-types';
import { ta } from './i18n-admin';

export function peopleSection(ctx: Context): Section {
  const tableBox = $<HTMLElement>('people-table');
  const heading = $<HTMLElement>('person-heading');
  const form = $<HTMLFormElement>('person-form');
  const username = $<HTMLInputElement>('person-username');
  const displayName = $<HTMLInputElement>('person-display-name');
  const role = $<HTMLSelectElement>('person-role');
  const site = $<HTMLSelectElement>('person-site');
  const password = $<HTMLInputElement>('person-password');
  const passwordLabel = $<HTMLLabelElement>('person-password-label');
  const disabledRow = $<HTMLElement>('person-disabled-row');
  const disabled = $<HTMLInputElement>('person-disabled');
  const submit = $<HTMLButtonElement>('person-submit');
  const cancel = $<HTMLButtonElement>('person-cancel');
  const errors = $<HTMLElement>('person-errors');
  const fields: Record<string, HTMLElement> = { username, displayName, role, site, password };

  /** The person being changed; null while the form adds one. */
  let editing: Person | null = null;

  function renderTable(): void {
    const people = ctx.data.people;
    if (people.length === 0) {
      tableBox.replaceChildren(el('p', {}, ta('noPeople')));
      return;
    }
    const sites = new Map(ctx.data.sites.map((s) => [s.id, s]));
    const rows = people.map((p) => {
      const edit = el('button', { type: 'button', 'aria-label': ta('editPersonLabel', { name: p.username }) }, ta('editPerson'));
      edit.addEventListener('click', () => startEdit(p));
      const siteOf = p.site_id === null ? undefined : sites.get(p.site_id);
      return {
        attrs: { 'data-person-id': String(p.id) },
        cells: [p.username, p.display_name, roleName(p.role), siteOf ? siteLabel(siteOf) : '', edit],
      };
    });
    const headers = ['colUsername', 'colDisplayName', 'colRole', 'colSite', 'colActions'] as const;
    tableBox.replaceChildren(table('', headers.map((h) => ta(h)), rows));
  }

  function renderForm(): void {
    fillSelect(role, ROLES.map((r) => ({ value: r, label: roleName(r) })));
    fillSelect(site, [
      { value: '', label: ta('personSiteNone') },
      ...ctx.data.sites.map((s) => ({ value: String(s.id), label: siteLabel(s) })),
    ]);
    heading.textContent = editing ? ta('editPersonHeading', { name: editing.username }) : ta('addPersonHeading');
    passwordLabel.textContent = ta(editing ? 'personPasswordKeep' : 'personPassword');
    submit.textContent = ta(editing ? 'savePersonButton' : 'addPersonButton');
    username.readOnly = editing !== null;
    disabledRow.hidden = editing === null;
    cancel.hidden = editing === null;
  }

  function startEdit(p: Person): void {
    editing = p;
    clearErrors(errors, fields);
    renderForm();
    username.value = p.username;
    displayName.value = p.display_name;
    role.value = p.role;
    site.value = p.site_id === null ? '' : String(p.site_id);
    password.value = '';
    disabled.checked = false;
    displayName.focus();
  }

  function stopEdit(): void {
    editing = null;
    form.reset();
    clearErrors(errors, fields);
    renderForm();
  }

  function values(): PersonForm {
    return {
      username: username.value,
      displayName: displayName.value,
      role: role.value,
      siteId: site.value,
      password: password.value,
      disabled: disabled.checked,
    };
  }

  async function add(): Promise<void> {
    const request = personRequest(values());
    if (!request.ok) return showInvalid(errors, ta('formErrors'), request.errors, fields);
    const r = await post<Person>('/api/people', request.value);
    if (!r.ok) return showFailure(errors, r.error, fields, r.error.code === 'duplicate_username' ? 'username' : null);
    stopEdit();
    setStatus(ta('personAdded', { name: r.value.username }));
    await ctx.reloadPeople();
  }

  async function save(current: Person): Promise<void> {
    const change = personChange(current, values());
    if (!change.ok) return showInvalid(errors, ta('formErrors'), change.errors, fields);
    if (Object.keys(change.value).length === 0) {
      setStatus(ta('personNoChange'));
      return;
    }
    const r = await put<Person>(`/api/people/${current.id}`, change.value);
    if (!r.ok) return showFailure(errors, r.error, fields);
    stopEdit();
    setStatus(ta('personSaved', { name: r.value.username }));
    await ctx.reloadPeople();
  }

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void busy(form, () => (editing ? save(editing) : add()));
  });
  cancel.addEventListener('click', stopEdit);

  return {
    render(): void {
      renderForm();
      renderTable();
    },
  };
}
