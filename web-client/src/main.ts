// The two pages (join, meeting) and the status line.

import './style.css';
import { currentLang, setLang, t } from './i18n';
import type { MessageKey } from './i18n';
import type { MeetingInfo } from './protocol';
import { Session } from './session';
import { TileGrid } from './tiles';

const MAX_NAME_CHARS = 64;

function $<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} is missing from index.html`);
  return el as T;
}

const joinPage = $<HTMLElement>('join-page');
const joinForm = $<HTMLFormElement>('join-form');
const nameInput = $<HTMLInputElement>('name');
const meetingSelect = $<HTMLSelectElement>('meeting');
const joinButton = $<HTMLButtonElement>('join');
const meetingPage = $<HTMLElement>('meeting-page');
const meetingTitle = $<HTMLElement>('meeting-title');
const leaveButton = $<HTMLButtonElement>('leave');
const langButton = $<HTMLButtonElement>('lang');
const statusLine = $<HTMLElement>('status');
const grid = new TileGrid($<HTMLElement>('grid'));

let session: Session | null = null;
let localStream: MediaStream | null = null;

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
  langButton.textContent = t('languageSwitch');
  grid.relabel();
  renderStatus();
}

langButton.addEventListener('click', () => {
  setLang(currentLang() === 'vi' ? 'en' : 'vi');
  applyTranslations();
});

// ---- join page ---------------------------------------------------------------------------

async function loadMeetings(): Promise<void> {
  setStatus('loadingMeetings');
  try {
    const res = await fetch(new URL('api/meetings', location.href));
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const meetings = (await res.json()) as MeetingInfo[];
    meetingSelect.replaceChildren(
      ...meetings.map((m) => new Option(m.title, String(m.id))),
    );
    const wanted = new URLSearchParams(location.search).get('meeting');
    if (wanted && meetings.some((m) => String(m.id) === wanted)) meetingSelect.value = wanted;
    setStatus(meetings.length === 0 ? 'noMeetings' : null, {}, meetings.length === 0);
  } catch (err) {
    setStatus('meetingsFailed', { detail: err instanceof Error ? err.message : String(err) }, true);
  }
}

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

async function join(): Promise<void> {
  const name = nameInput.value.trim();
  if (!name) return setStatus('nameRequired', {}, true);
  if ([...name].length > MAX_NAME_CHARS) return setStatus('nameTooLong', {}, true);
  const meeting = Number(meetingSelect.value);
  if (!Number.isInteger(meeting) || meetingSelect.value === '') {
    return setStatus('meetingRequired', {}, true);
  }
  if (!navigator.mediaDevices?.getUserMedia) return setStatus('mediaInsecure', {}, true);

  joinButton.disabled = true;
  setStatus('askingMedia');
  try {
    localStream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      // 540p: enough for a tile on a meeting-room TV, and three simulcast layers of it stay
      // within reach of the old, low-spec computers many communes have.
      video: { width: 960, height: 540 },
    });
  } catch (err) {
    joinButton.disabled = false;
    const detail = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    return setStatus(mediaErrorKey(err), { detail }, true);
  }

  setStatus('connecting');
  startSession(meeting, name, localStream);
}

/** The user is in a meeting (joined and not left): a lost connection is re-made. */
let inMeeting = false;
let reconnectTimer: number | undefined;
let reconnectAttempts = 0;

function startSession(meeting: number, name: string, stream: MediaStream): void {
  let welcomed = false;
  session = new Session(meeting, name, stream, {
    welcome(info, selfId) {
      welcomed = true;
      inMeeting = true;
      reconnectAttempts = 0;
      // After a reconnect the meeting is rebuilt from what the server says now.
      grid.clear();
      meetingTitle.textContent = info.title;
      joinPage.hidden = true;
      meetingPage.hidden = false;
      grid.addSelf(selfId, name, stream);
      setStatus('connectingMedia');
    },
    participantJoined: (id, who) => grid.setName(id, who),
    participantLeft: (id) => grid.remove(id),
    dominantSpeaker: (id) => grid.setSpeaking(id),
    remoteVideo: (id, track) => grid.setVideo(id, track),
    remoteAudio: (mid, track) => grid.addAudio(mid, track),
    connectionState(state) {
      if (state === 'connected') setStatus('connected');
      else if (state === 'failed') setStatus('mediaConnectionFailed', {}, true);
    },
    serverError(code, message) {
      if (code === 'replaced') {
        endSession();
        return setStatus('replaced', {}, true);
      }
      // Refused at the door (the meeting ended, the site is not invited): no retrying.
      if (!welcomed) endSession();
      setStatus('serverError', { message }, true);
    },
    signalingFailed: (detail) => setStatus('signalingFailed', { detail }, true),
    disconnected() {
      if (inMeeting) return scheduleReconnect(meeting, name, stream);
      endSession();
      setStatus('disconnected', {}, true);
    },
  });
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

// The SFU forwards each remote video at the size its tile is shown: tell it when that changes
// (debounced, since a window resize fires many times).
let viewTimer: number | undefined;
grid.onLayoutChange = () => {
  window.clearTimeout(viewTimer);
  viewTimer = window.setTimeout(() => session?.setView(grid.view()), 200);
};

joinForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  void join();
});

// ---- meeting page ------------------------------------------------------------------------

/** Back to the join page: camera off, tiles gone. */
function endSession(): void {
  inMeeting = false;
  window.clearTimeout(reconnectTimer);
  session?.leave();
  session = null;
  for (const track of localStream?.getTracks() ?? []) track.stop();
  localStream = null;
  grid.clear();
  meetingPage.hidden = true;
  joinPage.hidden = false;
  joinButton.disabled = false;
}

leaveButton.addEventListener('click', () => {
  endSession();
  setStatus('leftMeeting');
});

grid.onAutoplayBlocked = () => setStatus('clickForSound');
meetingPage.addEventListener('click', () => grid.resumeAudio());
window.addEventListener('pagehide', () => session?.leave());

applyTranslations();
void loadMeetings();
