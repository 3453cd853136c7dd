// The Sites tab: the register as a table (filtered as one types), one site added by a form, and
// a CSV file imported at once, with the bridge's refusal shown at the line it names.

import { call, post } from './api';
import { siteLabel } from './admin-context';
import type { Context, Section } from './admin-context';
import {
  $,
  busy,
  clearErrors,
  describeFailure,
  el,
  fillSelect,
  levelName,
  setStatus,
  showFailure,
  showFormErrors,
  showInvalid,
  table,
} from './admin-dom';
import { MAX_IMPORT_BYTES, filterSites, importErrorLine, lineOf, parentChoices, parentName, siteRequest } from './admin-state';
import { LEVELS } from './admin-types';
import type { ApiFailure, Imported, Level, Site } from './admin-types';
import { ta } from './i18n-admin';

export function sitesSection(ctx: Context): Section {
  const filter = $<HTMLInputElement>('sites-filter');
  const count = $<HTMLElement>('sites-count');
  const tableBox = $<HTMLElement>('sites-table');
  const importForm = $<HTMLFormElement>('import-form');
  const fileInput = $<HTMLInputElement>('import-file');
  const importErrors = $<HTMLElement>('import-errors');
  const siteForm = $<HTMLFormElement>('site-form');
  const levelSelect = $<HTMLSelectElement>('site-level');
  const parentSelect = $<HTMLSelectElement>('site-parent');
  const siteErrors = $<HTMLElement>('site-errors');
  const siteFields: Record<string, HTMLElement> = {
    code: $('site-code'),
    name: $('site-name'),
    level: levelSelect,
    parent: parentSelect,
    terminal: $('site-terminal'),
  };

  function renderTable(): void {
    const all = ctx.data.sites;
    const shown = filterSites(all, filter.value);
    count.textContent = ta('sitesCount', { shown: shown.length, total: all.length });
    if (shown.length === 0) {
      tableBox.replaceChildren(el('p', {}, ta(all.length === 0 ? 'noSites' : 'noSitesMatch')));
      return;
    }
    const byId = new Map(all.map((s) => [s.id, s]));
    const rows = shown.map((s) => ({
      attrs: { 'data-site-id': String(s.id), 'data-level': s.level },
      cells: [
        s.name,
        s.code,
        levelName(s.level),
        parentName(s, byId),
        s.terminal_id ?? '',
        ta(s.has_credential ? 'credentialIssued' : 'credentialNone'),
      ],
    }));
    const headers = ['colName', 'colCode', 'colLevel', 'colParent', 'colTerminal', 'colCredential'] as const;
    tableBox.replaceChildren(table('', headers.map((h) => ta(h)), rows));
  }

  function renderForm(): void {
    fillSelect(levelSelect, LEVELS.map((l) => ({ value: l, label: levelName(l) })));
    const choices = parentChoices(ctx.data.sites, levelSelect.value as Level);
    parentSelect.disabled = choices.length === 0;
    fillSelect(parentSelect, [
      { value: '', label: ta('siteParentNone') },
      ...choices.map((s) => ({ value: s.code, label: siteLabel(s) })),
    ]);
  }

  // ---- one site ------------------------------------------------------------------------------

  async function addSite(): Promise<void> {
    const data = new FormData(siteForm);
    const text = (name: string): string => String(data.get(name) ?? '');
    const request = siteRequest({
      code: text('code'),
      name: text('name'),
      level: text('level'),
      parentCode: text('parent'),
      terminalId: text('terminal'),
    });
    if (!request.ok) {
      showInvalid(siteErrors, ta('formErrors'), request.errors, siteFields);
      return;
    }
    const r = await post<Site>('/api/sites', request.value);
    if (!r.ok) {
      showFailure(siteErrors, r.error, siteFields);
      return;
    }
    clearErrors(siteErrors, siteFields);
    siteForm.reset();
    setStatus(ta('siteAdded', { name: r.value.name }));
    await ctx.reloadSites();
  }

  // ---- a CSV file ----------------------------------------------------------------------------

  function importRefusal(name: string, text: string, error: ApiFailure): void {
    const at = error.code === 'invalid_sites' ? importErrorLine(error.message) : null;
    const parts: Node[] = [el('p', {}, ta('importRefused', { name }))];
    if (at) {
      parts.push(el('p', { 'data-line': String(at.line) }, ta('importLine', at)));
      const content = lineOf(text, at.line);
      if (content !== null) parts.push(el('p', {}, ta('importLineText', at)), el('pre', {}, el('code', {}, content)));
    } else {
      parts.push(el('p', {}, describeFailure(error)));
    }
    importErrors.replaceChildren(...parts);
    importErrors.hidden = false;
    fileInput.setAttribute('aria-invalid', 'true');
    setStatus(ta('importRefused', { name }), true);
  }

  function importProblem(message: string): void {
    showFormErrors(importErrors, ta('formErrors'), [{ field: 'file', text: message }], { file: fileInput });
    setStatus(message, true);
  }

  async function importCsv(): Promise<void> {
    const file = fileInput.files?.[0];
    if (!file) return importProblem(ta('importNoFile'));
    const name = file.name;
    if (file.size === 0) return importProblem(ta('importEmpty', { name }));
    if (file.size > MAX_IMPORT_BYTES) {
      return importProblem(ta('importTooLarge', { name, max: MAX_IMPORT_BYTES / 1024 / 1024 }));
    }
    setStatus(ta('importSending', { name }));
    // The bytes as they are: a file saved in another encoding is refused by the bridge at its
    // line, not imported with its accents replaced.
    const r = await call<Imported>('POST', '/api/sites/import', { blob: file, type: 'text/csv; charset=utf-8' });
    if (!r.ok) return importRefusal(name, await file.text(), r.error);
    clearErrors(importErrors, { file: fileInput });
    importForm.reset();
    setStatus(ta('importDone', { count: r.value.imported, name }));
    await ctx.reloadSites();
  }

  // ---- wiring --------------------------------------------------------------------------------

  filter.addEventListener('input', renderTable);
  levelSelect.addEventListener('change', renderForm);
  siteForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void busy(siteForm, addSite);
  });
  importForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    void busy(importForm, importCsv);
  });

  return {
    render(): void {
      renderForm();
      renderTable();
    },
  };
}
