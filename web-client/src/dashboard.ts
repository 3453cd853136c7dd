// The technicians' dashboard: log in, choose a meeting, watch every invited site as a grid
// coloured by state and quality (worst first), the alerts as they fire, a site's last minutes
// as small charts, and the room terminal's commands one click away. Live over the signaling
// WebSocket (`watch`); the history and the commands over the REST API.

import './style.css';
import { DashboardModel, byName, cellState, sparkline, worstFirst } from './dashboard-state';
import type { CellState, SiteView } from './dashboard-state';
import { currentLang, setLang, t } from './i18n';
import type { MessageKey } from './i18n';
import { decode, encode } from './protocol';
import type { Alert, MeetingInfo, SiteSample } from './protocol';

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from dashboard.html`);
  return el as T;
}

const loginPage = $<HTMLElement>('login-page');
const loginForm = $<HTMLFormElement>('login-form');
const watchPage = $<HTMLElement>('watch-page');
const watchForm = $<HTMLFormElement>('watch-form');
const meetingSelect = $<HTMLSelectElement>('meeting');
const sortSelect = $<HTMLSelectElement>('sort');
const sitesEl = $<HTMLElement>('sites');
const alertsEl = $<HTMLUListElement>('alerts');
const detail = $<HTMLElement>('detail');
const detailTitle = $<HTMLElement>('detail-title');
const charts = $<HTMLElement>('charts');
const statusLine = $<HTMLElement>('status');
const langButton = $<HTMLButtonElement>('lang');

let model = new DashboardModel();
let meeting: number | null = null;
let selected: number | null = null;
let socket: WebSocket | null = null;
let retry = 0;

const STATE_KEYS: Record<CellState, MessageKey> = {
  alert: 'dashStateAlert',
  poor: 'dashStatePoor',
  offline: 'dashStateOffline',
  fair: 'dashStateFair',
  waiting: 'dashStateWaiting',
  good: 'dashStateGood',
};
const ALERT_KEYS: Record<Alert['kind'], MessageKey> = {
  offline: 'dashAlertOffline',
  loss: 'dashAlertLoss',
  no_video: 'dashAlertNoVideo',
  cpu: 'dashAlertCpu',
};

function setStatus(text: string, error = false): void {
  statusLine.textContent = text;
  statusLine.classList.toggle('error', error);
}

function applyTranslations(): void {
  document.documentElement.lang = currentLang();
  document.title = t('dashTitle');
  for (const el of document.querySelectorAll<HTMLElement>('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n as MessageKey);
  }
  langButton.textContent = t('languageSwitch');
  render();
}

langButton.addEventListener('click', () => {
  setLang(currentLang() === 'vi' ? 'en' : 'vi');
  applyTranslations();
});

// ---- the grid, the alerts, the detail -------------------------------------------------------

function figures(sample: SiteSample | null): string[] {
  if (!sample) return [];
  const out = [t('dashLoss', { value: (sample.loss * 100).toFixed(1) })];
  if (sample.rtt_ms !== null) out.push(t('dashRtt', { value: Math.round(sample.rtt_ms) }));
  if (sample.fps !== null) out.push(t('dashFps', { value: Math.round(sample.fps) }));
  out.push(t('dashKbps', { value: Math.round(sample.kbps_in) }));
  return out;
}

function cell(v: SiteView): HTMLButtonElement {
  const state = cellState(v);
  const button = document.createElement('button');
  button.type = 'button';
  button.className = `site-cell state-${state}`;
  button.dataset.site = String(v.site);
  button.dataset.state = state;
  button.setAttribute('aria-pressed', String(selected === v.site));
  const name = document.createElement('span');
  name.className = 'site-name';
  name.textContent = v.name;
  const stateText = document.createElement('span');
  stateText.className = 'site-state';
  stateText.textContent = t(STATE_KEYS[state]);
  button.append(name, stateText);
  for (const f of figures(v.sample)) {
    const line = document.createElement('span');
    line.className = 'site-figure';
    line.textContent = f;
    button.append(line);
  }
  button.setAttribute('aria-label', t('dashCell', { name: v.name, state: t(STATE_KEYS[state]) }));
  button.addEventListener('click', () => void select(v.site));
  return button;
}

function render(): void {
  const views = sortSelect.value === 'name' ? byName(model.views()) : worstFirst(model.views());
  sitesEl.replaceChildren(...views.map(cell));
  const alerts = model.alerts();
  if (alerts.length === 0) {
    const li = document.createElement('li');
    li.textContent = t('dashNoAlerts');
    alertsEl.replaceChildren(li);
  } else {
    alertsEl.replaceChildren(
      ...alerts.map((a) => {
        const li = document.createElement('li');
        li.dataset.kind = a.kind;
        li.dataset.site = String(a.site);
        const time = new Date(a.since * 1000).toLocaleTimeString(currentLang() === 'vi' ? 'vi-VN' : 'en-GB');
        li.textContent = `${t(ALERT_KEYS[a.kind], { site: model.nameOf(a.site) })} (${t('dashSince', { time })})`;
        return li;
      }),
    );
  }
}

sortSelect.addEventListener('change', render);

function chart(title: string, values: (number | null)[]): HTMLElement {
  const figure = document.createElement('figure');
  const caption = document.createElement('figcaption');
  const last = values.filter((v) => v !== null).at(-1);
  caption.textContent = last === undefined ? title : `${title}: ${Number(last).toFixed(1)}`;
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 200 40');
  svg.setAttribute('width', '200');
  svg.setAttribute('height', '40');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', title);
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  line.setAttribute('points', sparkline(values, 200, 38));
  line.setAttribute('fill', 'none');
  line.setAttribute('stroke', 'currentColor');
  svg.append(line);
  figure.append(caption, svg);
  return figure;
}

async function select(site: number): Promise<void> {
  selected = site;
  detail.hidden = false;
  detailTitle.textContent = t('dashDetail', { site: model.nameOf(site) });
  render();
  if (meeting === null) return;
  const r = await fetch(`/api/meetings/${meeting}/quality`, { credentials: 'same-origin' });
  if (!r.ok || selected !== site) return;
  const body = (await r.json()) as { sites: { site: number; samples: SiteSample[] }[] };
  const samples = body.sites.find((s) => s.site === site)?.samples ?? [];
  charts.replaceChildren(
    chart(t('dashChartLoss'), samples.map((s) => s.loss * 100)),
    chart(t('dashChartRtt'), samples.map((s) => s.rtt_ms)),
    chart(t('dashChartKbps'), samples.map((s) => s.kbps_in)),
    chart(t('dashChartFps'), samples.map((s) => s.fps)),
  );
}

async function command(body: Record<string, unknown>): Promise<void> {
  if (selected === null) return;
  const site = selected;
  const r = await fetch(`/api/sites/${site}/command`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (r.ok) {
    setStatus(t('dashCommandSent', { site: model.nameOf(site) }));
  } else {
    const e = (await r.json().catch(() => ({}))) as { message?: string };
    setStatus(t('dashCommandFailed', { detail: e.message ?? String(r.status) }), true);
  }
}

$<HTMLButtonElement>('recall').addEventListener('click', () =>
  void command({ action: 'preset', preset: Number($<HTMLSelectElement>('preset').value) }),
);
$<HTMLButtonElement>('mute').addEventListener('click', () => void command({ action: 'mute', muted: true }));
$<HTMLButtonElement>('unmute').addEventListener('click', () => void command({ action: 'mute', muted: false }));
$<HTMLButtonElement>('restart').addEventListener('click', () => void command({ action: 'restart' }));
$<HTMLButtonElement>('set-kbps').addEventListener('click', () =>
  void command({ action: 'max_bitrate', kbps: Number($<HTMLInputElement>('max-kbps').value) }),
);

// ---- the live connection -------------------------------------------------------------------

function watch(id: number): void {
  meeting = id;
  model = new DashboardModel();
  selected = null;
  detail.hidden = true;
  render();
  socket?.close();
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`);
  socket = ws;
  ws.onopen = () => {
    retry = 0;
    ws.send(encode({ type: 'watch', meeting: id }));
    setStatus(t('dashConnected'));
  };
  ws.onmessage = (ev) => {
    const msg = decode(String(ev.data));
    if (!msg) return;
    if (msg.type === 'roll_call') model.rollCall(msg.sites);
    else if (msg.type === 'quality') model.quality(msg.sites, msg.alerts);
    else if (msg.type === 'error') setStatus(t('serverError', { message: msg.message }), true);
    else return;
    render();
  };
  ws.onclose = () => {
    if (socket !== ws) return;
    const seconds = Math.min(30, 2 ** retry);
    retry += 1;
    setStatus(t('reconnecting', { seconds }), true);
    setTimeout(() => {
      if (socket === ws && meeting === id) watch(id);
    }, seconds * 1000);
  };
}

watchForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const id = Number(meetingSelect.value);
  if (Number.isInteger(id) && id > 0) watch(id);
});

async function loadMeetings(): Promise<boolean> {
  const me = await fetch('/api/me', { credentials: 'same-origin' });
  if (!me.ok) return false;
  const r = await fetch('/api/meetings', { credentials: 'same-origin' });
  const meetings = r.ok ? ((await r.json()) as MeetingInfo[]) : [];
  meetingSelect.replaceChildren(
    ...meetings.map((m) => {
      const o = document.createElement('option');
      o.value = String(m.id);
      o.textContent = m.title;
      return o;
    }),
  );
  const wanted = new URLSearchParams(location.search).get('meeting');
  if (wanted && meetings.some((m) => String(m.id) === wanted)) meetingSelect.value = wanted;
  loginPage.hidden = true;
  watchPage.hidden = false;
  if (wanted && meetingSelect.value === wanted) watch(Number(wanted));
  return true;
}

loginForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const data = new FormData(loginForm);
  const r = await fetch('/api/login', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: data.get('username'), password: data.get('password') }),
  });
  if (!r.ok) {
    const e = (await r.json().catch(() => ({}))) as { message?: string };
    setStatus(t('dashLoginFailed', { detail: e.message ?? String(r.status) }), true);
    return;
  }
  setStatus('');
  await loadMeetings();
});

applyTranslations();
void loadMeetings().then((ok) => {
  if (!ok) loginPage.hidden = false;
});

// Tests read the model.
declare global {
  interface Window {
    dashboard?: { model: () => DashboardModel };
  }
}
window.dashboard = { model: () => model };
