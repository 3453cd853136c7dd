// The administration pages (admin.html): log in, then four tabs for administrators — the
// register of sites (one by one or a CSV file), people and their roles, scheduling a meeting,
// and the history of meetings with their attendance and quality. Others are told plainly that
// the page is not for them. Every call goes to the REST API with the session cookie.

import './style.css';
import './admin.css';
import { get, post, whenUnauthorized } from './api';
import type { AdminData, Context, Section } from './admin-context';
import { $, describeFailure, roleName, setStatus, translateStatic } from './admin-dom';
import { historySection } from './admin-history';
import { peopleSection } from './admin-people';
import { scheduleSection } from './admin-schedule';
import { sitesSection } from './admin-sites';
import { setupTabs } from './admin-tabs';
import type { Me, Person, Site } from './admin-types';
import { currentLang, setLang } from './i18n';
import { ta } from './i18n-admin';

const loginPage = $<HTMLElement>('login-page');
const loginForm = $<HTMLFormElement>('login-form');
const deniedPage = $<HTMLElement>('denied-page');
const deniedText = $<HTMLElement>('denied-text');
const adminPage = $<HTMLElement>('admin-page');
const who = $<HTMLElement>('who');
const logoutButton = $<HTMLButtonElement>('logout');
const langButton = $<HTMLButtonElement>('lang');

/** Who is logged in and what they see; null before an administrator has logged in. */
let data: AdminData | null = null;
/** The account when it is not an administrator's (for the message in the current language). */
let denied: Me | null = null;

type Page = 'login' | 'denied' | 'admin';

function showPage(page: Page): void {
  loginPage.hidden = page !== 'login';
  deniedPage.hidden = page !== 'denied';
  adminPage.hidden = page !== 'admin';
  logoutButton.hidden = page === 'login';
  if (page === 'login') $<HTMLInputElement>('username').focus();
}

function renderWho(): void {
  const person = data?.me ?? denied?.person ?? null;
  who.textContent = person ? ta('loggedInAs', { name: person.display_name }) : '';
  if (denied) {
    deniedText.textContent = denied.person
      ? ta('notAdmin', { name: denied.person.username, role: roleName(denied.person.role) })
      : ta('notAdminTerminal');
  }
}

function renderAll(): void {
  renderWho();
  // The sections draw from the data, which only an administrator's login brings.
  if (data) for (const s of Object.values(sections)) s.render();
}

function applyTranslations(): void {
  document.documentElement.lang = currentLang();
  document.title = ta('adminTitle');
  translateStatic();
  langButton.textContent = ta('languageSwitch');
  renderAll();
}

langButton.addEventListener('click', () => {
  setLang(currentLang() === 'vi' ? 'en' : 'vi');
  applyTranslations();
});

// ---- the shared data -----------------------------------------------------------------------

async function reload<K extends 'sites' | 'people'>(key: K, path: string): Promise<boolean> {
  const r = await get<AdminData[K]>(path);
  if (!r.ok) {
    setStatus(describeFailure(r.error), true);
    return false;
  }
  if (data) data[key] = r.value;
  renderAll();
  return true;
}

const context: Context = {
  get data(): AdminData {
    if (!data) throw new Error('the sections are used before an administrator logged in');
    return data;
  },
  reloadSites: () => reload('sites', '/api/sites'),
  reloadPeople: () => reload('people', '/api/people'),
};

const sections: Record<string, Section> = {
  sites: sitesSection(context),
  people: peopleSection(context),
  schedule: scheduleSection(context),
  history: historySection(),
};

// A message about another tab would only confuse: a tab opens with the status line empty.
const tabs = setupTabs($('admin-tabs'), (name) => {
  setStatus('');
  sections[name]?.shown?.();
});

// ---- logging in and out --------------------------------------------------------------------

/** Opens the page for `me`: the tabs for an administrator, a clear refusal for anyone else. */
async function enter(me: Me): Promise<void> {
  const person = me.person;
  if (!person || person.role !== 'administrator') {
    denied = me;
    data = null;
    renderWho();
    showPage('denied');
    setStatus('');
    return;
  }
  denied = null;
  setStatus(ta('loading'));
  const [sites, people] = await Promise.all([get<Site[]>('/api/sites'), get<Person[]>('/api/people')]);
  if (!sites.ok) return setStatus(describeFailure(sites.error), true);
  if (!people.ok) return setStatus(describeFailure(people.error), true);
  data = { me: person, sites: sites.value, people: people.value };
  renderAll();
  showPage('admin');
  tabs.select(tabs.fromAddress());
}

function toLogin(message = '', error = false): void {
  data = null;
  denied = null;
  renderWho();
  showPage('login');
  setStatus(message, error);
}

loginForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = new FormData(loginForm);
  const r = await post<{ person: Person | null }>('/api/login', {
    username: String(form.get('username') ?? ''),
    password: String(form.get('password') ?? ''),
  });
  if (!r.ok) {
    const detail = r.error.status === 401 ? ta('loginWrong') : describeFailure(r.error);
    setStatus(ta('loginFailed', { detail }), true);
    return;
  }
  loginForm.reset();
  await enter({ person: r.value.person, site_id: null });
});

logoutButton.addEventListener('click', async () => {
  await post<void>('/api/logout', {});
  toLogin();
});

whenUnauthorized(() => {
  if (data || denied) toLogin(ta('sessionExpired'), true);
});

async function start(): Promise<void> {
  applyTranslations();
  const me = await get<Me>('/api/me');
  if (me.ok) await enter(me.value);
  else if (me.error.status === 401) toLogin();
  else toLogin(describeFailure(me.error), true);
}

void start();
