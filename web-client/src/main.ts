// The meeting page: login and the home page (upcoming meetings, or the join form for guests),
// then the meeting itself (stage, gallery, controls, the chair's panel) and the status line.

import './style.css';
import { get, post, whoAmI } from './api';
import type { Person } from './api';
import { ChairPanel } from './chair-panel';
import { currentLang, setLang, t } from './i18n';
import type { MessageKey } from './i18n';
import {
  floorButton,
  galleryCapacity,
  joinable,
  planStage,
  upcomingOrder,
  viewTiles,
  vietnamTime,
} from './meeting-state';
import type { ListedMeeting, QualityLevel } from './meeting-state';
import { isPdf, presentDocument, presentPdf, presentScreen } from './presenting';
import type { Presentation } from './presenting';
import type { FloorState, MeetingInfo, ParticipantInfo, RollCallEntry } from './protocol';
import { Session } from './session';
import { TileGrid } from './tiles';

const MAX_NAME_CHARS = 64;
/** Gallery tiles are at least this wide (CSS px), in this many rows. */
const GALLERY_TILE_WIDTH = 176;
const GALLERY_GAP = 8;
const GALLERY_ROWS = 2;

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
}

const homePage = $<HTMLElement>('home-page');
const loginCard = $<HTMLElement>('login-card');
const loginForm = $<HTMLFormElement>('login-form');
const upcomingCard = $<HTMLElement>('upcoming-card');
const upcomingList = $<HTMLUListElement>('upcoming');
const joinForm = $<HTMLFormElement>('join-form');
const nameInput = $<HTMLInputElement>('name');
const meetingSelect = $<HTMLSelectElement>('meeting');
const joinButton = $<HTMLButtonElement>('join');
const whoLabel = $<HTMLElement>('who');
const adminLink = $<HTMLAnchorElement>('admin-link');
const dashLink = $<HTMLAnchorElement>('dash-link');
const logoutButton = $<HTMLButtonElement>('logout');
const meetingPage = $<HTMLElement>('meeting-page');
const meetingTitle = $<HTMLElement>('meeting-title');
const presenterNote = $<HTMLElement>('presenter-note');
const qualityBadge = $<HTMLElement>('quality');
const hiddenCount = $<HTMLElement>('hidden-count');
const leaveButton = $<HTMLButtonElement>('leave');
const langButton = $<HTMLButtonElement>('lang');
const statusLine = $<HTMLElement>('status');
const micButton = $<HTMLButtonElement>('mic');
const camButton = $<HTMLButtonElement>('cam');
const floorBtn = $<HTMLButtonElement>('floor-button');
const shareDocButton = $<HTMLButtonElement>('share-document');
const documentFile = $<HTMLInputElement>('document-file');
const shareScreenButton = $<HTMLButtonElement>('share-screen');
const stopShareButton = $<HTMLButtonElement>('stop-share');
const pageControls = $<HTMLElement>('page-controls');
const pageNumber = $<HTMLElement>('page-number');
const prevPageButton = $<HTMLButtonElement>('prev-page');
const nextPageButton = $<HTMLButtonElement>('next-page');
const lowBandwidthButton = $<HTMLButtonElement>('low-bandwidth');
const micSelect = $<HTMLSelectElement>('mic-select');
const camSelect = $<HTMLSelectElement>('cam-select');
const chairPanelEl = $<HTMLElement>('chair-panel');
const startMeetingButton = $<HTMLButtonElement>('start-meeting');
const grid = new TileGrid($<HTMLElement>('stage'), $<HTMLElement>('gallery'));

// ---- state ---------------------------------------------------------------------------------

/** The person logged in (null: a guest). */
let me: Person | null = null;
let session: Session | null = null;
let localStream: MediaStream | null = null;

/** What the meeting page shows; reset on leaving. */
const live = {
  meetingId: null as number | null,
  selfId: null as number | null,
  people: [] as ParticipantInfo[],
  dominant: null as number | null,
  floor: null as FloorState | null,
  rollCall: [] as RollCallEntry[],
  presenting: null as number | null,
  chairing: false,
  micOn: true,
  camOn: true,
  lowBandwidth: false,
  quality: 'unknown' as QualityLevel,
  /** What this page presents, if it does. */
  presentation: null as Presentation | null,
  /** The server named this page the presenter (after which another presenter ends it). */
  presentationConfirmed: false,
  /** Roll call, the floor or the people changed since the chair's panel was drawn. */
  panelDirty: true,
};

// ---- status line -------------------------------------------------------------------------

type Status = { key: MessageKey; vars: Record<string, string | number>; error: boolean };
let status: Status | null = null;

function setStatus(key: MessageKey | null, vars: Record<string, string | number> = {}, error = false): void {
  status = key ? { key, vars, error } : null;
  renderStatus();
}

function renderStatus(): void {
  statusLine.textContent = status ? t(status.key, status.vars) : '';
  statusLine.classList.toggle('error', status?.error ?? false);
}

const detail = (err: unknown) => (err instanceof Error ? `${err.name}: ${err.message}` : String(err));

// ---- language ----------------------------------------------------------------------------

function applyTranslations(): void {
  document.documentElement.lang = currentLang();
  document.title = t('appTitle');
  for (const el of document.querySelectorAll<HTMLElement>('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n as MessageKey);
  }
  for (const el of document.querySelectorAll<HTMLInputElement>('[data-i18n-placeholder]')) {
    el.placeholder = t(el.dataset.i18nPlaceholder as MessageKey);
  }
  for (const el of document.querySelectorAll<HTMLElement>('[data-i18n-aria]')) {
    el.setAttribute('aria-label', t(el.dataset.i18nAria as MessageKey));
  }
  langButton.textContent = t('languageSwitch');
  whoLabel.textContent = me ? t('loggedInAs', { name: me.display_name }) : '';
  grid.relabel();
  renderStatus();
  if (me) void loadUpcoming();
  renderQuality();
  if (live.meetingId !== null) {
    live.panelDirty = true;
    render();
  }
}

langButton.addEventListener('click', () => {
  setLang(currentLang() === 'vi' ? 'en' : 'vi');
  applyTranslations();
});

// ---- login and the home page -----------------------------------------------------------

async function showHome(): Promise<void> {
  me = await whoAmI();
  loginCard.hidden = me !== null;
  upcomingCard.hidden = me === null;
  logoutButton.hidden = me === null;
  adminLink.hidden = me?.role !== 'administrator';
  // The dashboard is for those who may watch meetings: technicians, chairs, administrators.
  dashLink.hidden = me === null || me.role === 'participant';
  whoLabel.textContent = me ? t('loggedInAs', { name: me.display_name }) : '';
  if (me && !nameInput.value) nameInput.value = me.display_name;
  await Promise.all([loadMeetings(), me ? loadUpcoming() : Promise.resolve()]);
}

const STATE_KEYS: Record<string, MessageKey> = {
  scheduled: 'stateScheduled',
  roll_call: 'stateRollCall',
  in_progress: 'stateInProgress',
};

/** The person's upcoming meetings: their site's, or all of them without a site. */
async function loadUpcoming(): Promise<void> {
  if (!me) return;
  const path = me.site_id !== null ? `/api/sites/${me.site_id}/meetings` : '/api/schedule';
  const r = await get<ListedMeeting[]>(path);
  if (!r.ok) {
    setStatus('upcomingFailed', { detail: r.error.message }, true);
    return;
  }
  const meetings = upcomingOrder(r.value);
  if (meetings.length === 0) {
    const li = document.createElement('li');
    li.className = 'note';
    li.textContent = t('noUpcoming');
    upcomingList.replaceChildren(li);
    return;
  }
  upcomingList.replaceChildren(
    ...meetings.map((m) => {
      const li = document.createElement('li');
      li.dataset.meetingId = String(m.id);
      const title = document.createElement('strong');
      title.textContent = m.title;
      const when = document.createElement('span');
      const stateKey = STATE_KEYS[m.state];
      when.textContent = [vietnamTime(m.starts_at), stateKey ? t(stateKey) : m.state]
        .filter(Boolean)
        .join(' · ');
      li.append(title, when);
      if (joinable(m)) {
        const enter = document.createElement('button');
        enter.type = 'button';
        enter.className = 'primary-small';
        enter.textContent = t('enter');
        enter.setAttribute('aria-label', t('enterMeeting', { title: m.title }));
        enter.addEventListener('click', () => void join(m.id));
        li.append(enter);
      }
      return li;
    }),
  );
}

loginForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const data = new FormData(loginForm);
  void (async () => {
    const r = await post('/api/login', {
      username: String(data.get('username') ?? ''),
      password: String(data.get('password') ?? ''),
    });
    if (!r.ok) return setStatus('loginFailed', {}, true);
    setStatus(null);
    await showHome();
  })();
});

logoutButton.addEventListener('click', () => {
  if (live.meetingId !== null || session) endSession();
  void post('/api/logout', {}).then(() => {
    me = null;
    nameInput.value = '';
    void showHome();
  });
});

async function loadMeetings(): Promise<void> {
  // What the status line says already (why the meeting was left) stays.
  const own = status === null || status.key === 'loadingMeetings';
  if (own) setStatus('loadingMeetings');
  const r = await get<MeetingInfo[]>('/api/meetings');
  if (!r.ok) return setStatus('meetingsFailed', { detail: r.error.message }, true);
  const meetings = r.value;
  meetingSelect.replaceChildren(...meetings.map((m) => new Option(m.title, String(m.id))));
  const wanted = new URLSearchParams(location.search).get('meeting');
  if (wanted && meetings.some((m) => String(m.id) === wanted)) meetingSelect.value = wanted;
  if (meetings.length === 0) setStatus('noMeetings', {}, true);
  else if (own) setStatus(null);
}

// ---- joining -------------------------------------------------------------------------------

function mediaErrorKey(err: unknown): MessageKey {
  const name = err instanceof DOMException ? err.name : '';
  switch (name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'mediaDenied';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'mediaNotFound';
    case 'NotReadableError':
    case 'AbortError':
      return 'mediaBusy';
    default:
      return 'mediaFailed';
  }
}

// 540p: enough for a tile on a meeting-room TV, and three simulcast layers of it stay within
// reach of the old, low-spec computers many communes have.
const CAMERA = { width: 960, height: 540 };

/** A join is under way (asking for the camera, connecting) or done: a second one waits. */
let joining = false;

async function join(meeting: number): Promise<void> {
  if (joining || session) return;
  const name = nameInput.value.trim() || me?.display_name || '';
  if (!name) return setStatus('nameRequired', {}, true);
  if ([...name].length > MAX_NAME_CHARS) return setStatus('nameTooLong', {}, true);
  if (!navigator.mediaDevices?.getUserMedia) return setStatus('mediaInsecure', {}, true);

  joining = true;
  joinButton.disabled = true;
  setStatus('askingMedia');
  try {
    localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: CAMERA });
  } catch (err) {
    joining = false;
    joinButton.disabled = false;
    return setStatus(mediaErrorKey(err), { detail: detail(err) }, true);
  }
  void listDevices();
  setStatus('connecting');
  startSession(meeting, name, localStream);
}

/** The user is in a meeting (joined and not left): a lost connection is re-made. */
let inMeeting = false;
let reconnectTimer: number | undefined;
let reconnectAttempts = 0;

/** Refusals at the door that joining again would not change. */
const FINAL_REFUSALS = new Set([
  'meeting_not_open',
  'meeting_not_found',
  'not_invited',
  'meeting_locked',
  'login_required',
  'no_site',
  'invalid_name',
]);

function startSession(meeting: number, name: string, stream: MediaStream): void {
  let welcomed = false;
  const reconnecting = inMeeting;
  const mine = new Session(meeting, name, stream, {
    welcome(info, selfId) {
      welcomed = true;
      inMeeting = true;
      reconnectAttempts = 0;
      // After a reconnect the meeting is rebuilt from what the server says now.
      grid.clear();
      resetLive(meeting, selfId);
      meetingTitle.textContent = info.title;
      const arriving = meetingPage.hidden;
      homePage.hidden = true;
      meetingPage.hidden = false;
      // The button that was pressed is gone: keyboard users continue from the title.
      if (arriving) meetingTitle.focus();
      grid.addSelf(selfId, name, stream);
      if (!live.camOn) grid.setSelfVideo(null);
      setStatus('connectingMedia');
      void checkChair(meeting);
      render();
    },
    participantJoined(who) {
      live.people = [...live.people.filter((p) => p.id !== who.id), who];
      live.panelDirty = true;
      grid.setName(who.id, who.name);
      render();
    },
    participantLeft(id) {
      live.people = live.people.filter((p) => p.id !== id);
      live.panelDirty = true;
      grid.remove(id);
      render();
    },
    dominantSpeaker(id) {
      live.dominant = id;
      grid.setSpeaking(id);
      render();
    },
    remoteVideo: (id, track) => grid.setVideo(id, track),
    remoteAudio: (mid, track) => grid.addAudio(mid, track),
    content(owner, track) {
      live.presenting = owner;
      grid.setContent(owner, track);
      render();
    },
    floor(state) {
      live.floor = state;
      live.panelDirty = true;
      followPresenter(state.presenter);
      render();
    },
    rollCall(entries) {
      live.rollCall = entries;
      live.panelDirty = true;
      render();
    },
    quality(level) {
      live.quality = level;
      renderQuality();
    },
    rejoin() {
      // ICE could not be restarted: a whole new session, as after a server restart.
      const s = session;
      session = null;
      s?.leave();
      scheduleReconnect(meeting, name, stream);
    },
    connectionState(state) {
      if (state === 'connected') setStatus('connected');
      else if (state === 'disconnected' || state === 'failed') setStatus('iceRestarting', {}, true);
    },
    serverError(code, message) {
      if (code === 'replaced') {
        endSession();
        return setStatus('replaced', {}, true);
      }
      if (code === 'meeting_ended') {
        endSession();
        return setStatus('meetingEnded');
      }
      if (code === 'someone_presents') stopPresenting(false);
      if (!welcomed) {
        // Coming back after a lost connection, a passing error (the server restarting) is
        // retried; a refusal at the door (not invited, the meeting closed) is not.
        if (reconnecting && !FINAL_REFUSALS.has(code)) {
          mine.leave();
          return scheduleReconnect(meeting, name, stream);
        }
        endSession();
        return setStatus('serverError', { message }, true);
      }
      setStatus('refusedByServer', { message }, true);
    },
    signalingFailed: (d) => setStatus('signalingFailed', { detail: d }, true),
    disconnected() {
      if (session !== mine) return;
      if (inMeeting) return scheduleReconnect(meeting, name, stream);
      endSession();
      setStatus('disconnected', {}, true);
    },
  });
  session = mine;
  // Chosen before (camera off, microphone muted) stays chosen after a reconnect.
  mine.setMicrophone(live.micOn);
  void mine.setCamera(live.camOn);
}

/**
 * Ends this page's presentation when the server says someone else presents now (the chair
 * took over, or stopped it), once the server had named this page.
 */
function followPresenter(presenter: number | null): void {
  if (!live.presentation) return;
  if (presenter === live.selfId) {
    live.presentationConfirmed = true;
  } else if (live.presentationConfirmed) {
    stopPresenting(false);
  }
}

/** The server went away (a restart, the network): join again, waiting longer each time. */
function scheduleReconnect(meeting: number, name: string, stream: MediaStream): void {
  session = null;
  reconnectAttempts += 1;
  const delay = Math.min(1000 * 2 ** (reconnectAttempts - 1), 10_000);
  setStatus('reconnecting', { seconds: Math.round(delay / 1000) }, true);
  window.clearTimeout(reconnectTimer);
  reconnectTimer = window.setTimeout(() => startSession(meeting, name, stream), delay);
}

function resetLive(meeting: number, selfId: number): void {
  const keep = { micOn: live.micOn, camOn: live.camOn, lowBandwidth: live.lowBandwidth };
  stopPresenting(false);
  joining = false;
  Object.assign(live, {
    meetingId: meeting,
    selfId,
    people: [],
    dominant: null,
    floor: null,
    rollCall: [],
    presenting: null,
    chairing: false,
    quality: 'unknown',
    presentation: null,
    presentationConfirmed: false,
    panelDirty: true,
    ...keep,
  });
  renderQuality();
}

/** Whether this person chairs the meeting: its chair, or an administrator. */
async function checkChair(meeting: number): Promise<void> {
  if (!me) return;
  const r = await get<{ chair_id: number | null; state: string }>(`/api/meetings/${meeting}`);
  const chairing = me.role === 'administrator' || (r.ok && r.value.chair_id === me.id);
  if (live.meetingId !== meeting) return;
  live.chairing = chairing;
  startMeetingButton.hidden = !(r.ok && r.value.state === 'roll_call');
  render();
}

joinForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const meeting = Number(meetingSelect.value);
  if (!Number.isInteger(meeting) || meetingSelect.value === '') {
    return setStatus('meetingRequired', {}, true);
  }
  void join(meeting);
});

// ---- the meeting page --------------------------------------------------------------------

/** Lays the meeting out again from `live`, and tells the SFU what is shown. */
function render(): void {
  const plan = planStage({
    self: live.selfId,
    people: live.people,
    dominant: live.dominant,
    floor: live.floor,
    presenting: live.presenting,
    lowBandwidth: live.lowBandwidth,
    // One gallery place is this page's own preview.
    galleryCapacity: galleryCapacity(grid.galleryWidth(), GALLERY_TILE_WIDTH, GALLERY_GAP, GALLERY_ROWS) - 1,
  });
  grid.arrange(plan);
  hiddenCount.textContent = plan.hidden > 0 ? t('hiddenSites', { count: plan.hidden }) : '';
  const floor = live.floor;
  const self: ParticipantInfo | null =
    live.selfId === null ? null : { id: live.selfId, name: '', chair: live.chairing };
  if (self && me?.site_id != null) self.site = me.site_id;
  for (const p of self ? [...live.people, self] : live.people) {
    grid.setBadges(p.id, {
      chair: p.chair ?? false,
      floor: p.site !== undefined && floor?.holder === p.site,
      muted: p.site !== undefined && (floor?.muted.includes(p.site) ?? false),
      spotlight: p.site !== undefined && floor?.spotlight === p.site,
    });
  }
  renderControls();
  renderPresenter();
  if (live.chairing && live.panelDirty) {
    live.panelDirty = false;
    chairPanel.render(live.floor, live.rollCall, live.people);
  }
  chairPanelEl.hidden = !live.chairing;
  scheduleView();
}

function renderControls(): void {
  micButton.setAttribute('aria-pressed', String(live.micOn));
  const mutedByChair = me?.site_id != null && (live.floor?.muted.includes(me.site_id) ?? false);
  micButton.textContent = t(mutedByChair ? 'mutedByChair' : live.micOn ? 'micOn' : 'micOff');
  camButton.setAttribute('aria-pressed', String(live.camOn));
  camButton.textContent = t(live.camOn ? 'camOn' : 'camOff');
  lowBandwidthButton.setAttribute('aria-pressed', String(live.lowBandwidth));
  const mySite = me?.site_id ?? null;
  const state = floorButton(live.floor, mySite);
  floorBtn.hidden = state === 'none';
  // Not `disabled`: a focused button that becomes disabled drops the keyboard focus.
  floorBtn.setAttribute('aria-disabled', String(state === 'holding'));
  floorBtn.dataset.state = state;
  floorBtn.textContent = t(
    state === 'withdraw' ? 'withdrawFloor' : state === 'holding' ? 'holdingFloor' : 'requestFloor',
  );
  const presenting = live.presentation !== null;
  const pages = live.presentation?.pages;
  pageControls.hidden = !pages;
  if (pages) {
    pageNumber.textContent = t('pageOf', { page: pages.current(), count: pages.count });
    prevPageButton.disabled = pages.current() <= 1;
    nextPageButton.disabled = pages.current() >= pages.count;
  }
  stopShareButton.hidden = !presenting;
  shareDocButton.hidden = presenting;
  shareScreenButton.hidden = presenting || !navigator.mediaDevices?.getDisplayMedia;
}

function renderPresenter(): void {
  const presenter = live.floor?.presenter ?? null;
  if (presenter === null) {
    presenterNote.textContent = '';
  } else if (presenter === live.selfId) {
    presenterNote.textContent = t('youPresent');
  } else {
    const name = live.people.find((p) => p.id === presenter)?.name ?? t('unknownName', { id: presenter });
    presenterNote.textContent = t('presenting', { name });
  }
}

const QUALITY_KEYS: Record<QualityLevel, MessageKey> = {
  good: 'qualityGood',
  fair: 'qualityFair',
  poor: 'qualityPoor',
  unknown: 'qualityUnknown',
};

function renderQuality(): void {
  qualityBadge.dataset.level = live.quality;
  qualityBadge.setAttribute('aria-label', t(QUALITY_KEYS[live.quality]));
  qualityBadge.title = t(QUALITY_KEYS[live.quality]);
}

// The SFU forwards each remote video at the size its tile is shown: tell it when that changes
// (debounced, since a window resize fires many times).
let viewTimer: number | undefined;
function scheduleView(): void {
  window.clearTimeout(viewTimer);
  viewTimer = window.setTimeout(() => session?.setView(viewTiles(grid.heights())), 200);
}
grid.onLayoutChange = () => {
  if (live.meetingId !== null) render();
};

// ---- controls ------------------------------------------------------------------------------

micButton.addEventListener('click', () => {
  live.micOn = !live.micOn;
  session?.setMicrophone(live.micOn);
  renderControls();
});

camButton.addEventListener('click', () => {
  live.camOn = !live.camOn;
  void session?.setCamera(live.camOn);
  grid.setSelfVideo(live.camOn ? localStream : null);
  renderControls();
});

floorBtn.addEventListener('click', () => {
  if (floorBtn.dataset.state === 'holding') return;
  const action = floorBtn.dataset.state === 'withdraw' ? 'withdraw' : 'request';
  session?.command({ type: 'floor', action });
});

lowBandwidthButton.addEventListener('click', () => {
  live.lowBandwidth = !live.lowBandwidth;
  render();
});

shareDocButton.addEventListener('click', () => documentFile.click());
documentFile.addEventListener('change', () => {
  const file = documentFile.files?.[0];
  documentFile.value = '';
  if (!file) return;
  void startPresenting(() => (isPdf(file) ? presentPdf(file) : presentDocument(file)), 'documentFailed');
});

/** Turns the presented PDF by `delta` pages. */
async function turnPage(delta: number): Promise<void> {
  const pages = live.presentation?.pages;
  if (!pages) return;
  try {
    await pages.show(pages.current() + delta);
  } catch (err) {
    setStatus('documentFailed', { detail: detail(err) }, true);
  }
  renderControls();
}
prevPageButton.addEventListener('click', () => void turnPage(-1));
nextPageButton.addEventListener('click', () => void turnPage(1));
shareScreenButton.addEventListener('click', () => void startPresenting(presentScreen, 'screenFailed'));
stopShareButton.addEventListener('click', () => stopPresenting(true));

async function startPresenting(open: () => Promise<Presentation>, failure: MessageKey): Promise<void> {
  if (!session) return;
  let presentation: Presentation;
  try {
    presentation = await open();
  } catch (err) {
    return setStatus(failure, { detail: detail(err) }, true);
  }
  stopPresenting(false);
  live.presentation = presentation;
  // The browser's own "stop sharing" ends it too.
  presentation.track.addEventListener('ended', () => stopPresenting(true));
  try {
    await session.present(presentation.track);
  } catch (err) {
    stopPresenting(false);
    return setStatus(failure, { detail: detail(err) }, true);
  }
  renderControls();
}

/** Ends this page's presentation; `tell`: also tells the server (not when leaving). */
function stopPresenting(tell: boolean): void {
  const p = live.presentation;
  if (!p) return;
  live.presentation = null;
  live.presentationConfirmed = false;
  p.stop();
  void session?.present(null, tell).catch(() => {});
  renderControls();
}

// ---- devices -------------------------------------------------------------------------------

async function listDevices(): Promise<void> {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select: HTMLSelectElement, kind: MediaDeviceKind, current: MediaStreamTrack | undefined) => {
    const list = devices.filter((d) => d.kind === kind);
    select.replaceChildren(...list.map((d, i) => new Option(d.label || `${kind} ${i + 1}`, d.deviceId)));
    const id = current?.getSettings().deviceId;
    if (id) select.value = id;
    select.disabled = list.length < 2;
  };
  fill(micSelect, 'audioinput', localStream?.getAudioTracks()[0]);
  fill(camSelect, 'videoinput', localStream?.getVideoTracks()[0]);
}

async function switchDevice(kind: 'audio' | 'video', deviceId: string): Promise<void> {
  const stream = localStream;
  if (!stream) return;
  try {
    const constraints: MediaStreamConstraints =
      kind === 'audio' ? { audio: { deviceId: { exact: deviceId } } } : { video: { ...CAMERA, deviceId: { exact: deviceId } } };
    const fresh = await navigator.mediaDevices.getUserMedia(constraints);
    if (localStream !== stream) {
      // The meeting was left while the browser asked: the new device is not wanted.
      for (const t of fresh.getTracks()) t.stop();
      return;
    }
    const track = kind === 'audio' ? fresh.getAudioTracks()[0] : fresh.getVideoTracks()[0];
    if (!track) throw new Error(`no ${kind} track from the device`);
    const old = kind === 'audio' ? stream.getAudioTracks()[0] : stream.getVideoTracks()[0];
    if (old) {
      stream.removeTrack(old);
      old.stop();
    }
    stream.addTrack(track);
    if (kind === 'audio') track.enabled = live.micOn;
    await session?.replaceDevice(track);
    if (kind === 'video' && live.camOn) grid.setSelfVideo(stream);
  } catch (err) {
    setStatus('deviceFailed', { detail: detail(err) }, true);
  }
}

micSelect.addEventListener('change', () => void switchDevice('audio', micSelect.value));
camSelect.addEventListener('change', () => void switchDevice('video', camSelect.value));

// ---- the chair ------------------------------------------------------------------------------

const chairPanel = new ChairPanel(
  $<HTMLOListElement>('floor-queue'),
  $<HTMLUListElement>('roll-call'),
  $<HTMLElement>('roll-summary'),
  $<HTMLButtonElement>('lock'),
  {
    grant: (site) => session?.command({ type: 'floor', action: 'grant', site }),
    refuse: (site) => session?.command({ type: 'floor', action: 'refuse', site }),
    mute: (site, muted) => session?.command({ type: 'mute', site, muted }),
    spotlight: (site) => session?.command({ type: 'spotlight', site }),
  },
);

$<HTMLButtonElement>('mute-all').addEventListener('click', () => session?.command({ type: 'mute_all', muted: true }));
$<HTMLButtonElement>('unmute-all').addEventListener('click', () =>
  session?.command({ type: 'mute_all', muted: false }),
);
$<HTMLButtonElement>('lock').addEventListener('click', () =>
  session?.command({ type: 'lock', locked: !(live.floor?.locked ?? false) }),
);
$<HTMLButtonElement>('revoke-floor').addEventListener('click', () =>
  session?.command({ type: 'floor', action: 'revoke' }),
);
$<HTMLButtonElement>('clear-spotlight').addEventListener('click', () =>
  session?.command({ type: 'spotlight', site: null }),
);

async function lifecycle(action: 'start' | 'end'): Promise<void> {
  if (live.meetingId === null) return;
  const r = await post(`/api/meetings/${live.meetingId}/${action}`, {});
  if (!r.ok) return setStatus('actionFailed', { detail: r.error.message }, true);
  if (action === 'start') {
    startMeetingButton.hidden = true;
    setStatus('meetingStarted');
  }
}

startMeetingButton.addEventListener('click', () => void lifecycle('start'));
$<HTMLButtonElement>('end-meeting').addEventListener('click', () => {
  if (window.confirm(t('confirmEnd'))) void lifecycle('end');
});

// ---- leaving -------------------------------------------------------------------------------

/** Back to the home page: camera off, tiles gone. */
function endSession(): void {
  inMeeting = false;
  window.clearTimeout(reconnectTimer);
  stopPresenting(false);
  session?.leave();
  session = null;
  for (const track of localStream?.getTracks() ?? []) track.stop();
  localStream = null;
  grid.clear();
  live.meetingId = null;
  const wasInMeeting = !meetingPage.hidden;
  meetingPage.hidden = true;
  homePage.hidden = false;
  joining = false;
  joinButton.disabled = false;
  if (wasInMeeting) $<HTMLElement>('join-page').querySelector('h2')?.focus();
  void showHome();
}

leaveButton.addEventListener('click', () => {
  endSession();
  setStatus('leftMeeting');
});

grid.onAutoplayBlocked = () => setStatus('clickForSound');
meetingPage.addEventListener('click', () => grid.resumeAudio());
window.addEventListener('pagehide', () => session?.leave());

applyTranslations();
renderQuality();
void showHome();
