// Tabs as the WAI-ARIA pattern has them: buttons with role=tab and aria-selected in a tablist,
// one panel shown; the arrow keys, Home and End move between tabs (and open them), and only the
// selected tab is in the Tab order. The open tab is kept in the address (#people) so that a
// reload or a link opens it again.

export interface Tabs {
  /** Opens tab `name` (its button is `#tab-<name>`, its panel `#panel-<name>`). */
  select(name: string, focus?: boolean): void;
  /** The tab named in the address, or the first. */
  fromAddress(): string;
}

export function setupTabs(tablist: HTMLElement, onShow: (name: string) => void): Tabs {
  const tabs = [...tablist.querySelectorAll<HTMLButtonElement>('[role="tab"]')];
  const nameOf = (tab: HTMLButtonElement): string => tab.id.replace(/^tab-/, '');
  const names = tabs.map(nameOf);

  function select(name: string, focus = false): void {
    for (const tab of tabs) {
      const on = nameOf(tab) === name;
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
      const panel = document.getElementById(tab.getAttribute('aria-controls') ?? '');
      if (panel) panel.hidden = !on;
      if (on && focus) tab.focus();
    }
    if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
    onShow(name);
  }

  tablist.addEventListener('click', (ev) => {
    const tab = (ev.target as HTMLElement).closest<HTMLButtonElement>('[role="tab"]');
    if (tab) select(nameOf(tab));
  });
  tablist.addEventListener('keydown', (ev) => {
    const at = tabs.findIndex((t) => t === document.activeElement);
    if (at < 0) return;
    const next: Record<string, number> = {
      ArrowRight: (at + 1) % tabs.length,
      ArrowLeft: (at - 1 + tabs.length) % tabs.length,
      Home: 0,
      End: tabs.length - 1,
    };
    const to = next[ev.key];
    const tab = to === undefined ? undefined : tabs[to];
    if (!tab) return;
    ev.preventDefault();
    select(nameOf(tab), true);
  });

  return {
    select,
    fromAddress(): string {
      const wanted = location.hash.slice(1);
      return names.includes(wanted) ? wanted : (names[0] ?? '');
    },
  };
}
