// The dashboard's state logic: what colour a site is, the order worst first, alerts that fire
// and stop, the sparkline's points.

import { describe, expect, it } from 'vitest';
import { DashboardModel, byName, cellState, sparkline, worstFirst } from './dashboard-state';
import type { SiteView } from './dashboard-state';
import type { SiteSample } from './protocol';

function sample(site: number, grade: SiteSample['grade'], loss = 0): SiteSample {
  return {
    site,
    at: 1000,
    loss,
    loss_after: 0,
    rtt_ms: 20,
    jitter_ms: 3,
    kbps_in: 500,
    kbps_out: 800,
    fps: 25,
    freezes: 0,
    estimate_kbps: 2000,
    grade,
  };
}

function view(site: number, name: string, extra: Partial<SiteView> = {}): SiteView {
  return { site, name, presence: 'joined', sample: sample(site, 'good'), alerts: [], ...extra };
}

describe('cellState', () => {
  it('puts a firing alert above everything', () => {
    expect(cellState(view(1, 'A', { alerts: ['loss'], presence: 'offline' }))).toBe('alert');
  });
  it('shows offline and not-yet-in sites as such, whatever their last figures', () => {
    expect(cellState(view(1, 'A', { presence: 'offline' }))).toBe('offline');
    expect(cellState(view(1, 'A', { presence: 'connected' }))).toBe('waiting');
  });
  it('colours a site in the meeting by its grade, and waits for its first sample', () => {
    expect(cellState(view(1, 'A', { sample: sample(1, 'poor') }))).toBe('poor');
    expect(cellState(view(1, 'A', { sample: sample(1, 'fair') }))).toBe('fair');
    expect(cellState(view(1, 'A'))).toBe('good');
    expect(cellState(view(1, 'A', { sample: null }))).toBe('waiting');
  });
});

describe('ordering', () => {
  const sites = [
    view(1, 'Xã Ba'),
    view(2, 'Xã An', { sample: sample(2, 'poor', 0.08) }),
    view(3, 'Xã Bình', { presence: 'offline' }),
    view(4, 'Xã Đông', { alerts: ['no_video'] }),
    view(5, 'Xã Cường', { sample: sample(5, 'poor', 0.2) }),
    view(6, 'Huyện Một', { sample: sample(6, 'fair') }),
  ];

  it('lists the worst first: alerts, poor (more loss first), offline, fair, good', () => {
    expect(worstFirst(sites).map((v) => v.site)).toEqual([4, 5, 2, 3, 6, 1]);
  });

  it('sorts by name in Vietnamese order', () => {
    expect(byName(sites).map((v) => v.name)).toEqual([
      'Huyện Một',
      'Xã An',
      'Xã Ba',
      'Xã Bình',
      'Xã Cường',
      'Xã Đông',
    ]);
  });

  it('leaves its input alone', () => {
    const before = sites.map((v) => v.site);
    worstFirst(sites);
    expect(sites.map((v) => v.site)).toEqual(before);
  });
});

describe('DashboardModel', () => {
  it('joins roll call, samples and alerts per site, and forgets alerts that stop', () => {
    const m = new DashboardModel();
    m.rollCall([
      { site: 3, name: 'Xã Một', presence: 'joined', audio: true, video: true, video_layers: 2 },
      { site: 4, name: 'Xã Hai', presence: 'offline', audio: false, video: false, video_layers: 0 },
    ]);
    m.quality([sample(3, 'poor', 0.2)], [{ kind: 'loss', meeting: 9, site: 3, since: 100, firing: true }]);
    expect(m.views().find((v) => v.site === 3)).toMatchObject({ name: 'Xã Một', alerts: ['loss'] });
    expect(worstFirst(m.views()).map((v) => cellState(v))).toEqual(['alert', 'offline']);
    m.quality([], [{ kind: 'loss', meeting: 9, site: 3, since: 100, firing: false }]);
    expect(m.alerts()).toEqual([]);
    expect(cellState(m.views().find((v) => v.site === 3)!)).toBe('poor');
  });

  it('shows a site it only knows from quality by its number', () => {
    const m = new DashboardModel();
    m.quality([sample(7, 'good')], []);
    expect(m.views()).toMatchObject([{ site: 7, name: '#7', presence: 'unknown' }]);
  });

  it('orders alerts oldest first', () => {
    const m = new DashboardModel();
    m.quality([], [
      { kind: 'cpu', meeting: 1, site: 2, since: 300, firing: true },
      { kind: 'offline', meeting: 1, site: 5, since: 100, firing: true },
    ]);
    expect(m.alerts().map((a) => a.kind)).toEqual(['offline', 'cpu']);
  });
});

describe('sparkline', () => {
  it('scales to the box, the largest value at the top, gaps skipped', () => {
    expect(sparkline([0, 5, null, 10], 30, 10)).toBe('0.0,10.0 10.0,5.0 30.0,0.0');
  });
  it('draws nothing without values', () => {
    expect(sparkline([null, null], 30, 10)).toBe('');
    expect(sparkline([], 30, 10)).toBe('');
  });
});
