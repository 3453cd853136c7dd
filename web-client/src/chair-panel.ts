// The chair's panel: every invited site with its roll-call state and its controls (mute,
// spotlight, give the floor), the queue of floor requests (grant, refuse), and the meeting's
// own controls (start, mute all, lock, take the floor back, clear the spotlight, end).

import { t } from './i18n';
import type { MessageKey } from './i18n';
import { rollCallOrder, siteName, summarize } from './meeting-state';
import type { FloorState, ParticipantInfo, RollCallEntry } from './protocol';

export interface ChairActions {
  grant(site: number): void;
  refuse(site: number): void;
  mute(site: number, muted: boolean): void;
  spotlight(site: number | null): void;
}

const PRESENCE: Record<RollCallEntry['presence'], MessageKey> = {
  joined: 'presenceJoined',
  connected: 'presenceConnected',
  offline: 'presenceOffline',
};

/** A button of a site's row; `action` and the site name it again after the panel is redrawn. */
function button(
  action: string,
  site: number,
  text: string,
  label: string,
  onClick: () => void,
  extra = '',
): HTMLButtonElement {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.dataset.action = action;
  b.dataset.site = String(site);
  b.setAttribute('aria-label', label);
  if (extra) b.className = extra;
  b.addEventListener('click', onClick);
  return b;
}

export class ChairPanel {
  constructor(
    private readonly queue: HTMLOListElement,
    private readonly rollCall: HTMLUListElement,
    private readonly summary: HTMLElement,
    private readonly lock: HTMLButtonElement,
    private readonly actions: ChairActions,
  ) {}

  render(floor: FloorState | null, entries: RollCallEntry[], people: ParticipantInfo[]): void {
    // The lists are drawn afresh: keep the keyboard focus on the same control.
    const focused = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    const refocus = focused?.dataset.action ? `[data-action="${focused.dataset.action}"][data-site="${focused.dataset.site}"]` : null;
    const inQueue = focused !== null && this.queue.contains(focused);
    this.draw(floor, entries, people);
    if (refocus) {
      const again =
        (inQueue ? this.queue : this.rollCall).querySelector<HTMLElement>(refocus) ??
        this.rollCall.querySelector<HTMLElement>(refocus);
      again?.focus();
    }
  }

  private draw(floor: FloorState | null, entries: RollCallEntry[], people: ParticipantInfo[]): void {
    const muted = new Set(floor?.muted ?? []);
    const requests = floor?.queue ?? [];
    const name = (site: number) => siteName(site, entries, people);

    if (requests.length === 0) {
      const li = document.createElement('li');
      li.className = 'note';
      li.textContent = t('noRequests');
      this.queue.replaceChildren(li);
    } else {
      this.queue.replaceChildren(
        ...requests.map((site) => {
          const li = document.createElement('li');
          li.dataset.site = String(site);
          const label = document.createElement('span');
          label.textContent = name(site);
          li.append(
            label,
            button('grant', site, t('grant'), t('grantSite', { site: name(site) }), () => this.actions.grant(site), 'primary-small'),
            button('refuse', site, t('refuse'), t('refuseSite', { site: name(site) }), () => this.actions.refuse(site)),
          );
          return li;
        }),
      );
    }

    const s = summarize(entries);
    this.summary.textContent = t('rollCallSummary', { ...s });
    this.rollCall.replaceChildren(
      ...rollCallOrder(entries).map((e) => {
        const li = document.createElement('li');
        li.dataset.site = String(e.site);
        li.dataset.presence = e.presence;
        const label = document.createElement('span');
        label.className = 'site-label';
        label.textContent = e.name;
        const presence = document.createElement('span');
        presence.className = `presence presence-${e.presence}`;
        presence.textContent = t(PRESENCE[e.presence]);
        const isMuted = muted.has(e.site);
        const holder = floor?.holder === e.site;
        const spot = floor?.spotlight === e.site;
        const spotlight = button('spotlight', e.site, t('spotlight'), t('spotlightSite', { site: e.name }), () =>
          this.actions.spotlight(spot ? null : e.site),
        );
        spotlight.setAttribute('aria-pressed', String(spot));
        li.append(
          label,
          presence,
          button(
            'mute',
            e.site,
            isMuted ? t('unmute') : t('mute'),
            t(isMuted ? 'unmuteSite' : 'muteSite', { site: e.name }),
            () => this.actions.mute(e.site, !isMuted),
          ),
          spotlight,
          button('floor', e.site, t('grant'), t('grantSite', { site: e.name }), () => this.actions.grant(e.site)),
        );
        li.classList.toggle('holder', holder);
        li.classList.toggle('spotlit', spot);
        return li;
      }),
    );

    // One name; its state is `aria-pressed` (a name that flips as well would read twice).
    this.lock.setAttribute('aria-pressed', String(floor?.locked ?? false));
  }
}
