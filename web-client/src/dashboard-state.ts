// The technicians' dashboard, as state: every invited site of a meeting with its roll-call
// presence, its latest quality sample and the alerts firing for it; each site's state for the
// grid's colour; the order worst first. No DOM here, so that it is tested directly.

import type { Alert, RollCallEntry, SiteSample } from './protocol';

export type CellState = 'alert' | 'poor' | 'offline' | 'fair' | 'waiting' | 'good';

/** One site as the grid shows it. */
export interface SiteView {
  site: number;
  name: string;
  presence: RollCallEntry['presence'] | 'unknown';
  sample: SiteSample | null;
  alerts: Alert['kind'][];
}

/** How bad each state is: the grid sorts by it, worst first. */
const SEVERITY: Record<CellState, number> = {
  alert: 5,
  poor: 4,
  offline: 3,
  fair: 2,
  waiting: 1,
  good: 0,
};

/** The state a site's cell is coloured by. */
export function cellState(v: SiteView): CellState {
  if (v.alerts.length > 0) return 'alert';
  if (v.presence === 'offline') return 'offline';
  // Online but not in the meeting: its last figures are stale.
  if (v.presence === 'connected') return 'waiting';
  return v.sample ? gradeState(v.sample) : 'waiting';
}

function gradeState(sample: SiteSample): CellState {
  return sample.grade === 'poor' ? 'poor' : sample.grade === 'fair' ? 'fair' : 'good';
}

/** Worst first; among equals, the larger loss, then by name. */
export function worstFirst(views: SiteView[]): SiteView[] {
  return [...views].sort((a, b) => {
    const s = SEVERITY[cellState(b)] - SEVERITY[cellState(a)];
    if (s !== 0) return s;
    const loss = (b.sample?.loss ?? 0) - (a.sample?.loss ?? 0);
    if (loss !== 0) return loss;
    return a.name.localeCompare(b.name, 'vi');
  });
}

/** By name, as the register lists them. */
export function byName(views: SiteView[]): SiteView[] {
  return [...views].sort((a, b) => a.name.localeCompare(b.name, 'vi'));
}

/** The dashboard's model of one meeting, fed by `roll_call` and `quality` messages. */
export class DashboardModel {
  private readonly names = new Map<number, string>();
  private readonly presence = new Map<number, RollCallEntry['presence']>();
  private readonly samples = new Map<number, SiteSample>();
  /** `kind:site` → the alert. */
  private readonly firing = new Map<string, Alert>();

  rollCall(entries: RollCallEntry[]): void {
    for (const e of entries) {
      this.names.set(e.site, e.name);
      this.presence.set(e.site, e.presence);
    }
  }

  quality(sites: SiteSample[], alerts: Alert[]): void {
    for (const s of sites) this.samples.set(s.site, s);
    for (const a of alerts) {
      const key = `${a.kind}:${a.site}`;
      if (a.firing) this.firing.set(key, a);
      else this.firing.delete(key);
    }
  }

  /** The alerts firing now, oldest first. */
  alerts(): Alert[] {
    return [...this.firing.values()].sort((a, b) => a.since - b.since);
  }

  /** Every site known from roll call or quality. */
  views(): SiteView[] {
    const sites = new Set<number>([...this.names.keys(), ...this.samples.keys()]);
    return [...sites].map((site) => ({
      site,
      name: this.names.get(site) ?? `#${site}`,
      presence: this.presence.get(site) ?? 'unknown',
      sample: this.samples.get(site) ?? null,
      alerts: this.alerts()
        .filter((a) => a.site === site)
        .map((a) => a.kind),
    }));
  }

  nameOf(site: number): string {
    return this.names.get(site) ?? `#${site}`;
  }
}

/** The points of a sparkline: `values` scaled into a `width` × `height` box (y grows down). */
export function sparkline(values: (number | null)[], width: number, height: number): string {
  const present = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (present.length === 0) return '';
  const max = Math.max(...present, 1e-9);
  const step = values.length > 1 ? width / (values.length - 1) : 0;
  const points: string[] = [];
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) return;
    const x = i * step;
    const y = height - (v / max) * height;
    points.push(`${x.toFixed(1)},${y.toFixed(1)}`);
  });
  return points.join(' ');
}
