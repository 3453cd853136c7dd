import { describe, expect, it } from 'vitest';
import {
  DISCONNECTED_GRACE_MS,
  IceWatch,
  MAX_RESTARTS,
  RESTART_EVERY_MS,
  activeLayers,
  floorButton,
  galleryCapacity,
  joinable,
  lossBetween,
  planStage,
  qualityLevel,
  rollCallOrder,
  siteName,
  summarize,
  upcomingOrder,
  viewTiles,
  vietnamTime,
} from './meeting-state';
import type { StageInput } from './meeting-state';
import type { FloorState, ParticipantInfo, RollCallEntry } from './protocol';

const floor = (over: Partial<FloorState> = {}): FloorState => ({
  holder: null,
  queue: [],
  muted: [],
  locked: false,
  spotlight: null,
  presenter: null,
  ...over,
});

// The chair (participant 1, site 10) and communes 2..6 (sites 20..60); this page is 7.
const people: ParticipantInfo[] = [
  { id: 1, name: 'Chủ tọa', site: 10, chair: true },
  ...[2, 3, 4, 5, 6].map((id) => ({ id, name: `Xã ${id}`, site: id * 10 })),
];

const input = (over: Partial<StageInput> = {}): StageInput => ({
  self: 7,
  people,
  dominant: null,
  floor: floor(),
  presenting: null,
  lowBandwidth: false,
  galleryCapacity: 10,
  ...over,
});

describe('planStage', () => {
  it('shows the chair large and the rest in the gallery', () => {
    expect(planStage(input())).toEqual({ content: null, main: [1], gallery: [2, 3, 4, 5, 6], hidden: 0 });
  });

  it('puts the dominant speaker beside the chair', () => {
    expect(planStage(input({ dominant: 4 })).main).toEqual([1, 4]);
    expect(planStage(input({ dominant: 4 })).gallery).toEqual([2, 3, 5, 6]);
  });

  it('prefers the spotlight, then the floor holder, to the speaker', () => {
    expect(planStage(input({ dominant: 4, floor: floor({ holder: 30 }) })).main).toEqual([1, 3]);
    expect(planStage(input({ dominant: 4, floor: floor({ holder: 30, spotlight: 50 }) })).main).toEqual([1, 5]);
  });

  it('takes the newest participant of a site that reconnected', () => {
    const again = [...people, { id: 9, name: 'Xã 3', site: 30 }];
    expect(planStage(input({ people: again, floor: floor({ holder: 30 }) })).main).toEqual([1, 9]);
  });

  it('never shows this page itself from the network, nor unknown speakers', () => {
    const withSelf = [...people, { id: 7, name: 'Tôi', site: 70 }];
    const stage = planStage(input({ people: withSelf, dominant: 7 }));
    expect(stage.main).toEqual([1]);
    expect(stage.gallery).not.toContain(7);
    expect(planStage(input({ dominant: 99 })).main).toEqual([1]);
  });

  it('fills only the room the gallery has', () => {
    expect(planStage(input({ galleryCapacity: 2 }))).toMatchObject({ gallery: [2, 3], hidden: 3 });
    expect(planStage(input({ galleryCapacity: -1 }))).toMatchObject({ gallery: [], hidden: 5 });
  });

  it('shows a presentation largest, but only of someone in the meeting', () => {
    expect(planStage(input({ presenting: 3 })).content).toBe(3);
    expect(planStage(input({ presenting: 42 })).content).toBeNull();
  });

  it('keeps the chair only in low-bandwidth mode (and a presentation)', () => {
    const stage = planStage(input({ lowBandwidth: true, dominant: 4, presenting: 2 }));
    expect(stage).toEqual({ content: 2, main: [1], gallery: [], hidden: 5 });
    const noChair = people.slice(1);
    expect(planStage(input({ people: noChair, lowBandwidth: true, dominant: 4 })).main).toEqual([4]);
  });
});

describe('gallery and view', () => {
  it('counts the tiles that fit, gaps included', () => {
    expect(galleryCapacity(1000, 200, 0, 2)).toBe(10);
    // 7 tiles of 176 px need 6 gaps of 8 px: 1280 px, not 1232.
    expect(galleryCapacity(1279, 176, 8, 1)).toBe(6);
    expect(galleryCapacity(1280, 176, 8, 1)).toBe(7);
    expect(galleryCapacity(150, 200, 8, 2)).toBe(2);
    expect(galleryCapacity(0, 200, 8, 2)).toBe(0);
    expect(galleryCapacity(NaN, 200, 8, 2)).toBe(0);
  });

  it('asks the SFU for each shown camera at its height, and nothing else', () => {
    const heights = new Map([
      [4, 719.6],
      [2, 180],
      [3, 0],
      [5, NaN],
    ]);
    expect(viewTiles(heights)).toEqual([
      { participant: 2, height: 180 },
      { participant: 4, height: 720 },
    ]);
  });
});

describe('layers sent (send_layers)', () => {
  it('turns off the layers above those asked for, lowest first', () => {
    expect(activeLayers([true, true, true], 2)).toEqual([true, true, false]);
    expect(activeLayers([true, true, true], 1)).toEqual([true, false, false]);
  });

  it('turns layers back on when more are asked for', () => {
    expect(activeLayers([true, false, false], 3)).toEqual([true, true, true]);
    expect(activeLayers([true, false, false], 2)).toEqual([true, true, false]);
    // More than the track has: all of them.
    expect(activeLayers([true, false, false], 4)).toEqual([true, true, true]);
  });

  it('needs no change when the flags are already so', () => {
    expect(activeLayers([true, true, false], 2)).toBeNull();
    expect(activeLayers([true, true, true], 3)).toBeNull();
  });

  it('never turns off the lowest layer, nor a single-encoding track', () => {
    expect(activeLayers([true, true, true], 0)).toEqual([true, false, false]);
    expect(activeLayers([false, false, false], -1)).toEqual([true, false, false]);
    expect(activeLayers([true], 1)).toBeNull();
    expect(activeLayers([true], 0)).toBeNull();
    expect(activeLayers([false], 1)).toEqual([true]);
  });

  it('takes a count that is not a whole number as the layers it covers, and nonsense as all', () => {
    expect(activeLayers([true, true, true], 2.7)).toEqual([true, true, false]);
    expect(activeLayers([true, false, false], NaN)).toEqual([true, true, true]);
  });
});

describe('connection quality', () => {
  it('grades loss and round-trip time', () => {
    expect(qualityLevel({ rttMs: null, loss: null })).toBe('unknown');
    expect(qualityLevel({ rttMs: 20, loss: 0 })).toBe('good');
    expect(qualityLevel({ rttMs: 200, loss: 0 })).toBe('fair');
    expect(qualityLevel({ rttMs: 20, loss: 0.05 })).toBe('fair');
    expect(qualityLevel({ rttMs: 500, loss: 0 })).toBe('poor');
    expect(qualityLevel({ rttMs: null, loss: 0.2 })).toBe('poor');
  });

  it('computes loss over a period from cumulative counters', () => {
    expect(lossBetween({ received: 100, lost: 0 }, { received: 190, lost: 10 })).toBeCloseTo(0.1);
    expect(lossBetween({ received: 100, lost: 5 }, { received: 100, lost: 5 })).toBeNull();
    // A counter that went backwards (a new stream) is not negative loss.
    expect(lossBetween({ received: 100, lost: 9 }, { received: 200, lost: 0 })).toBe(0);
  });
});

describe('IceWatch', () => {
  it('restarts ICE after a grace period of disconnection, not at once', () => {
    const w = new IceWatch();
    expect(w.update('connected', 0)).toBe('none');
    expect(w.update('disconnected', 1000)).toBe('none');
    expect(w.update('disconnected', 1000 + DISCONNECTED_GRACE_MS - 1)).toBe('none');
    expect(w.update('disconnected', 1000 + DISCONNECTED_GRACE_MS)).toBe('restart');
    // Back: nothing more to do.
    expect(w.update('connected', 5000)).toBe('none');
  });

  it('restarts at once when ICE failed, spaced out, then rejoins', () => {
    const w = new IceWatch();
    let now = 0;
    const actions = [];
    for (let i = 0; i < MAX_RESTARTS + 1; i++) {
      actions.push(w.update('failed', now));
      expect(w.update('failed', now + 1)).toBe('none');
      now += RESTART_EVERY_MS;
    }
    expect(actions).toEqual([...Array(MAX_RESTARTS).fill('restart'), 'rejoin']);
  });

  it('ignores states that are not trouble', () => {
    const w = new IceWatch();
    for (const s of ['new', 'checking', 'closed'] as RTCIceConnectionState[]) {
      expect(w.update(s, 100_000)).toBe('none');
    }
  });
});

describe('chair panel', () => {
  const rc = (site: number, name: string, presence: RollCallEntry['presence']): RollCallEntry => ({
    site,
    name,
    presence,
    audio: presence === 'joined',
    video: presence === 'joined',
    video_layers: presence === 'joined' ? 3 : 0,
  });
  const entries = [rc(3, 'Xã Bình', 'offline'), rc(1, 'Xã An', 'joined'), rc(2, 'Xã Chi', 'connected'), rc(4, 'Xã Ân', 'joined')];

  it('summarizes roll call', () => {
    expect(summarize(entries)).toEqual({ invited: 4, joined: 2, connected: 1, offline: 1 });
  });

  it('lists those in the meeting first, by name', () => {
    expect(rollCallOrder(entries).map((e) => e.site)).toEqual([1, 4, 2, 3]);
  });

  it('names a site from roll call, then from participants', () => {
    expect(siteName(2, entries, people)).toBe('Xã Chi');
    expect(siteName(30, entries, people)).toBe('Xã 3');
    expect(siteName(99, entries, people)).toBe('#99');
  });

  it("offers a site's own floor button by its state", () => {
    expect(floorButton(null, 20)).toBe('none');
    expect(floorButton(floor(), null)).toBe('none');
    expect(floorButton(floor(), 20)).toBe('request');
    expect(floorButton(floor({ queue: [30, 20] }), 20)).toBe('withdraw');
    expect(floorButton(floor({ holder: 20 }), 20)).toBe('holding');
  });
});

describe('home page', () => {
  const m = (id: number, state: string, starts: string | null) => ({
    id,
    title: `Họp ${id}`,
    state,
    starts_at: starts,
    ends_at: null,
  });

  it('knows which meetings may be entered now', () => {
    expect(joinable(m(1, 'roll_call', '2026-12-01T01:00:00Z'))).toBe(true);
    expect(joinable(m(1, 'in_progress', '2026-12-01T01:00:00Z'))).toBe(true);
    expect(joinable(m(1, 'scheduled', '2026-12-01T01:00:00Z'))).toBe(false);
    expect(joinable(m(1, 'scheduled', null))).toBe(true);
  });

  it('lists open meetings first, then by start, without ended ones', () => {
    const list = [
      m(1, 'scheduled', '2026-12-03T01:00:00Z'),
      m(2, 'ended', '2026-11-01T01:00:00Z'),
      m(3, 'scheduled', '2026-12-02T01:00:00Z'),
      m(4, 'roll_call', '2026-12-04T01:00:00Z'),
    ];
    expect(upcomingOrder(list).map((x) => x.id)).toEqual([4, 3, 1]);
  });

  it('shows times in Vietnam time', () => {
    expect(vietnamTime('2026-12-03T01:00:00Z')).toBe('08:00 03/12/2026');
    expect(vietnamTime('2026-12-03T20:30:00+00:00')).toBe('03:30 04/12/2026');
    expect(vietnamTime(null)).toBe('');
    expect(vietnamTime('garbage')).toBe('');
  });
});
