// The administration pages' logic: the meeting request built from the form (Vietnam's time,
// the four ways to invite), what is refused before sending, the site filter, which sites an
// invitation names, API errors, the history's lists and the quality report's rows.

import { describe, expect, it } from 'vitest';
import {
  fieldOfCode,
  filterSites,
  formatDuration,
  historyGroups,
  importErrorLine,
  invitedSites,
  lineOf,
  meetingRequest,
  parentChoices,
  parseApiFailure,
  personChange,
  personRequest,
  qualityRows,
  rollCallCounts,
  searchKey,
  siteRequest,
} from './admin-state';
import type { FieldError, PersonForm, ScheduleForm } from './admin-state';
import { defaultTimes, formatVn, toVnLocal, vnDay, vnLocalToRfc3339 } from './admin-time';
import type { Meeting, MeetingLine, Person, ReportLine, Site } from './admin-types';

function site(id: number, name: string, level: Site['level'], parent_id: number | null = null): Site {
  return { id, code: `S${id}`, name, level, parent_id, terminal_id: null, has_credential: false };
}

const REGISTER: Site[] = [
  site(1, 'Ủy ban nhân dân tỉnh', 'province'),
  site(2, 'Huyện Đông Hòa', 'district', 1),
  site(3, 'Huyện Tây Sơn', 'district', 1),
  site(4, 'Xã Hòa Bình', 'commune', 2),
  site(5, 'Xã Hòa Đông', 'commune', 2),
  site(6, 'Xã Bình Tân', 'commune', 3),
];

function form(extra: Partial<ScheduleForm> = {}): ScheduleForm {
  return {
    title: '  Giao ban tháng 12 ',
    agenda: '1. Tình hình kinh tế',
    documentRef: ' 123/GM-UBND ',
    chairId: '',
    start: '2026-12-03T08:00',
    end: '2026-12-03T10:30',
    inviteKind: 'all',
    level: 'commune',
    districtId: '',
    siteIds: [],
    mode: 'floor',
    lastN: '9',
    rollCallMinutes: '30',
    ...extra,
  };
}

const fieldsOf = (errors: FieldError[]): string[] => errors.map((e) => e.field);

function refused(f: ScheduleForm): FieldError[] {
  const r = meetingRequest(f);
  if (r.ok) throw new Error(`accepted: ${JSON.stringify(r.value)}`);
  return r.errors;
}

describe('Vietnam time', () => {
  it('reads a datetime-local value as Vietnam time and sends +07:00', () => {
    expect(vnLocalToRfc3339('2026-12-03T08:00')).toBe('2026-12-03T08:00:00+07:00');
    expect(vnLocalToRfc3339('2026-12-03T23:59:30')).toBe('2026-12-03T23:59:30+07:00');
    // The same instant as 01:00 UTC, whatever the browser's own time zone.
    expect(Date.parse(vnLocalToRfc3339('2026-12-03T08:00') ?? '')).toBe(Date.UTC(2026, 11, 3, 1, 0));
  });

  it('refuses what is not a real date and time', () => {
    for (const bad of ['', '2026-02-30T08:00', '2026-13-01T08:00', '2026-12-03T24:00', '2026-12-03 08:00', 'tomorrow']) {
      expect(vnLocalToRfc3339(bad), bad).toBeNull();
    }
    expect(vnLocalToRfc3339('2028-02-29T08:00')).toBe('2028-02-29T08:00:00+07:00');
  });

  it('shows server times in Vietnam time, across the day boundary', () => {
    expect(formatVn('2026-12-03T20:30:00Z')).toBe('04/12/2026 03:30');
    expect(formatVn('2026-12-03T08:00:00+07:00')).toBe('03/12/2026 08:00');
    expect(toVnLocal(Date.UTC(2026, 11, 31, 17, 5))).toBe('2027-01-01T00:05');
    expect(vnDay(Date.UTC(2026, 11, 31, 18, 0), -1)).toBe('2026-12-31');
  });

  it('proposes tomorrow morning in Vietnam, also late in the evening UTC', () => {
    // 2026-12-03 18:00 UTC is already 4 December 01:00 in Vietnam: tomorrow is the 5th.
    expect(defaultTimes(Date.UTC(2026, 11, 3, 18, 0))).toEqual({ start: '2026-12-05T08:00', end: '2026-12-05T10:00' });
    expect(defaultTimes(Date.UTC(2026, 11, 3, 2, 0), 15, 3)).toEqual({ start: '2026-12-04T15:00', end: '2026-12-04T18:00' });
  });
});

describe('the meeting request', () => {
  it('is built from the form, trimmed, with the times in +07:00 and the numbers as numbers', () => {
    const r = meetingRequest(form({ chairId: '7', mode: 'open', lastN: '0', rollCallMinutes: '15' }));
    expect(r).toEqual({
      ok: true,
      value: {
        title: 'Giao ban tháng 12',
        agenda: '1. Tình hình kinh tế',
        document_ref: '123/GM-UBND',
        chair_id: 7,
        starts_at: '2026-12-03T08:00:00+07:00',
        ends_at: '2026-12-03T10:30:00+07:00',
        invite: { kind: 'all' },
        mode: 'open',
        last_n: 0,
        roll_call_minutes: 15,
      },
    });
  });

  it('leaves the chair out when none is chosen (the bridge takes the caller)', () => {
    const r = meetingRequest(form());
    expect(r.ok && 'chair_id' in r.value).toBe(false);
  });

  it('invites in each of the four ways', () => {
    const invite = (f: Partial<ScheduleForm>) => {
      const r = meetingRequest(form(f));
      return r.ok ? r.value.invite : r.errors;
    };
    expect(invite({ inviteKind: 'all' })).toEqual({ kind: 'all' });
    expect(invite({ inviteKind: 'level', level: 'district' })).toEqual({ kind: 'level', level: 'district' });
    expect(invite({ inviteKind: 'district', districtId: '2' })).toEqual({ kind: 'district', site_id: 2 });
    expect(invite({ inviteKind: 'sites', siteIds: [6, 4, 6] })).toEqual({ kind: 'sites', site_ids: [6, 4] });
  });

  it('refuses what is plainly wrong, each at its field', () => {
    expect(fieldsOf(refused(form({ title: '   ' })))).toEqual(['title']);
    expect(fieldsOf(refused(form({ title: 'Đ'.repeat(101) })))).toEqual(['title']);
    expect(refused(form({ end: '2026-12-03T08:00' }))).toEqual([{ field: 'end', key: 'errEndBeforeStart' }]);
    expect(refused(form({ end: '2026-12-03T07:00' }))[0]?.key).toBe('errEndBeforeStart');
    expect(refused(form({ end: '2026-12-10T08:01' }))[0]?.key).toBe('errTooLong');
    expect(fieldsOf(refused(form({ start: '', end: '' })))).toEqual(['start', 'end']);
    expect(refused(form({ inviteKind: 'sites', siteIds: [] }))).toEqual([{ field: 'sites', key: 'errNoSites' }]);
    expect(refused(form({ inviteKind: 'district', districtId: '' }))).toEqual([{ field: 'district', key: 'errNoDistrict' }]);
    expect(fieldsOf(refused(form({ lastN: '513' })))).toEqual(['lastN']);
    expect(fieldsOf(refused(form({ lastN: '2.5' })))).toEqual(['lastN']);
    expect(fieldsOf(refused(form({ rollCallMinutes: '-1' })))).toEqual(['rollCallMinutes']);
    expect(fieldsOf(refused(form({ agenda: 'x'.repeat(20_001) })))).toEqual(['agenda']);
  });

  it('reports every problem at once', () => {
    expect(fieldsOf(refused(form({ title: '', end: '2026-12-02T08:00', inviteKind: 'sites' })))).toEqual([
      'title',
      'end',
      'sites',
    ]);
  });

  it('names the field of a server refusal', () => {
    expect(fieldOfCode('end_before_start')).toBe('end');
    expect(fieldOfCode('invalid_chair')).toBe('chair');
    expect(fieldOfCode('unknown_site')).toBe('invite');
    expect(fieldOfCode('storage_unavailable')).toBeNull();
  });
});

describe('which sites an invitation names', () => {
  const ids = (s: Set<number> | null) => (s === null ? null : [...s].sort());

  it('works them out as the bridge does', () => {
    expect(ids(invitedSites({ kind: 'all' }, REGISTER))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(ids(invitedSites({ kind: 'level', level: 'commune' }, REGISTER))).toEqual([4, 5, 6]);
    expect(ids(invitedSites({ kind: 'district', site_id: 2 }, REGISTER))).toEqual([2, 4, 5]);
    expect(ids(invitedSites({ kind: 'sites', site_ids: [6, 1] }, REGISTER))).toEqual([1, 6]);
  });

  it("adds the chair's own site", () => {
    expect(ids(invitedSites({ kind: 'district', site_id: 3 }, REGISTER, 1))).toEqual([1, 3, 6]);
  });

  it('names none when the bridge would refuse', () => {
    expect(invitedSites({ kind: 'district', site_id: 4 }, REGISTER)).toBeNull();
    expect(invitedSites({ kind: 'sites', site_ids: [1, 99] }, REGISTER)).toBeNull();
  });
});

describe('the site filter', () => {
  it('ignores case and Vietnamese accents, and matches every word in name or code', () => {
    expect(searchKey('Xã Hòa Đông')).toBe('xa hoa dong');
    expect(filterSites(REGISTER, 'hoa').map((s) => s.id)).toEqual([2, 4, 5]);
    expect(filterSites(REGISTER, 'HÒA đông').map((s) => s.id)).toEqual([2, 5]);
    expect(filterSites(REGISTER, 'xa binh').map((s) => s.id)).toEqual([4, 6]);
    expect(filterSites(REGISTER, 's6').map((s) => s.id)).toEqual([6]);
    expect(filterSites(REGISTER, '   ')).toHaveLength(6);
    expect(filterSites(REGISTER, 'Hà Nội')).toEqual([]);
  });

  it("offers a new site's possible parents by its level", () => {
    expect(parentChoices(REGISTER, 'commune').map((s) => s.id)).toEqual([2, 3]);
    expect(parentChoices(REGISTER, 'district').map((s) => s.id)).toEqual([1]);
    expect(parentChoices(REGISTER, 'province')).toEqual([]);
  });
});

describe('a new site', () => {
  it('is checked as the bridge checks it', () => {
    expect(siteRequest({ code: ' X07 ', name: ' Xã Bảy ', level: 'commune', parentCode: 'H01', terminalId: '' })).toEqual({
      ok: true,
      value: { code: 'X07', name: 'Xã Bảy', level: 'commune', parent_code: 'H01' },
    });
    const bad = siteRequest({ code: 'X 07', name: '', level: 'district', parentCode: '', terminalId: 'rt-1' });
    expect(bad.ok ? [] : fieldsOf(bad.errors)).toEqual(['code', 'name', 'parent']);
    const province = siteRequest({ code: 'T01', name: 'Tỉnh', level: 'province', parentCode: 'H01', terminalId: 'rt-t01' });
    expect(province).toEqual({ ok: true, value: { code: 'T01', name: 'Tỉnh', level: 'province', terminal_id: 'rt-t01' } });
  });
});

describe('an import refused', () => {
  it('names the line the bridge names, and shows that line of the file', () => {
    expect(importErrorLine('line 3: level "county" is none of province, district, commune')).toEqual({
      line: 3,
      message: 'level "county" is none of province, district, commune',
    });
    expect(importErrorLine('the database is unavailable')).toBeNull();
    const text = '\uFEFFcode,name,level,parent_code\r\nT01,Tỉnh,province,\r\nH01,Huyện,county,T01\r\n';
    expect(lineOf(text, 1)).toBe('code,name,level,parent_code');
    expect(lineOf(text, 3)).toBe('H01,Huyện,county,T01');
    expect(lineOf(text, 9)).toBeNull();
  });
});

describe('people', () => {
  const typed = (extra: Partial<PersonForm> = {}): PersonForm => ({
    username: 'nguyen.an',
    displayName: 'Nguyễn Văn An',
    role: 'participant',
    siteId: '4',
    password: 'mật-khẩu-dài',
    disabled: false,
    ...extra,
  });

  it('a new person is checked and sent with its site', () => {
    expect(personRequest(typed())).toEqual({
      ok: true,
      value: { username: 'nguyen.an', display_name: 'Nguyễn Văn An', role: 'participant', site_id: 4, password: 'mật-khẩu-dài' },
    });
    const bad = personRequest(typed({ username: 'nguyễn an', displayName: ' ', password: 'ngắn', siteId: '' }));
    expect(bad.ok ? [] : fieldsOf(bad.errors)).toEqual(['username', 'displayName', 'password']);
  });

  it('a change sends only what differs; an empty password keeps it', () => {
    const current: Person = { id: 9, username: 'nguyen.an', display_name: 'Nguyễn Văn An', role: 'participant', site_id: 4 };
    expect(personChange(current, typed({ password: '' }))).toEqual({ ok: true, value: {} });
    expect(personChange(current, typed({ password: '', role: 'chair', siteId: '' }))).toEqual({
      ok: true,
      value: { role: 'chair', clear_site: true },
    });
    expect(personChange(current, typed({ siteId: '6', disabled: true }))).toEqual({
      ok: true,
      value: { site_id: 6, password: 'mật-khẩu-dài', disabled: true },
    });
    const bad = personChange(current, typed({ password: 'short' }));
    expect(bad.ok ? [] : fieldsOf(bad.errors)).toEqual(['password']);
  });
});

describe('API errors', () => {
  it("reads the bridge's {code, message}, and anything else as well as it can", () => {
    expect(parseApiFailure(400, '{"code":"end_before_start","message":"the meeting must end after it starts"}')).toEqual({
      status: 400,
      code: 'end_before_start',
      message: 'the meeting must end after it starts',
    });
    expect(parseApiFailure(413, 'length limit exceeded')).toEqual({ status: 413, code: 'too_large', message: 'length limit exceeded' });
    expect(parseApiFailure(502, '<html>Bad gateway</html>').code).toBe('http_502');
    expect(parseApiFailure(500, '{"error":1}').code).toBe('http_500');
  });
});

describe('the history', () => {
  function meeting(id: number, state: Meeting['state'], starts_at: string, site_ids: number[]): Meeting {
    return {
      id,
      title: `Họp ${id}`,
      agenda: '',
      document_ref: '',
      chair_id: 1,
      starts_at,
      ends_at: starts_at.replace('T08', 'T10'),
      state,
      mode: 'floor',
      last_n: 9,
      roll_call_minutes: 30,
      locked: false,
      invite: { kind: 'sites', site_ids },
      site_ids,
      revision: 0,
    };
  }
  const line = (id: number, starts_at: string, hours: number, invited: number, attended: number): MeetingLine => ({
    id,
    title: `Họp ${id}`,
    starts_at,
    hours,
    invited,
    attended,
    trips_saved: attended,
  });

  it('lists the schedule first and the meetings held after, latest first, as ended', () => {
    const schedule = [meeting(5, 'in_progress', '2026-12-03T08:00:00+07:00', [1, 2, 3]), meeting(6, 'scheduled', '2026-12-04T08:00:00+07:00', [1])];
    const held = [
      line(3, '2026-11-01T08:00:00+07:00', 2, 4, 3),
      line(5, '2026-12-03T08:00:00+07:00', 2, 3, 2),
      line(4, '2026-11-20T14:00:00+07:00', 1.5, 5, 5),
    ];
    const { upcoming, past } = historyGroups(schedule, held);
    expect(upcoming.map((e) => [e.id, e.state, e.invited, e.attended])).toEqual([
      [5, 'in_progress', 3, 2],
      [6, 'scheduled', 1, null],
    ]);
    expect(past.map((e) => [e.id, e.state, e.attended])).toEqual([
      [4, 'ended', 5],
      [3, 'ended', 3],
    ]);
    expect(formatVn(past[0]?.endsAt ?? null)).toBe('20/11/2026 15:30');
  });

  it('counts roll call by presence', () => {
    const entry = (presence: 'offline' | 'connected' | 'joined') => ({ site: 1, name: 'x', presence, audio: true, video: true, video_layers: 1 });
    expect(rollCallCounts([entry('joined'), entry('offline'), entry('joined'), entry('connected')])).toEqual({
      joined: 2,
      connected: 1,
      offline: 1,
    });
  });
});

describe('the quality report', () => {
  const report: ReportLine[] = [
    {
      site: 4,
      code: 'X001',
      name: 'Xã Hòa Bình',
      connected_seconds: 3725.4,
      loss: 0.0234,
      worst_loss: 0.2,
      loss_after: 0.001,
      rtt_ms: 48.6,
      worst_rtt_ms: 310,
      kbps_in: 1234.5,
      lowest_kbps_in: 300,
      freezes: 2,
    },
    {
      site: 5,
      code: 'X002',
      name: 'Xã Hòa Đông',
      connected_seconds: 59,
      loss: null,
      worst_loss: 0,
      loss_after: null,
      rtt_ms: null,
      worst_rtt_ms: 0,
      kbps_in: null,
      lowest_kbps_in: null,
      freezes: 0,
    },
  ];

  it('has a row per site: time connected, shares in percent, averages, freezes', () => {
    expect(qualityRows(report, 'en-GB')).toEqual([
      { site: 4, name: 'Xã Hòa Bình', cells: ['1:02:05', '2.3 %', '20.0 %', '0.1 %', '49', '1,235', '2'] },
      { site: 5, name: 'Xã Hòa Đông', cells: ['0:00:59', '—', '0.0 %', '—', '—', '—', '0'] },
    ]);
  });

  it('writes numbers the Vietnamese way in Vietnamese', () => {
    expect(qualityRows(report, 'vi-VN')[0]?.cells.slice(1, 6)).toEqual(['2,3 %', '20,0 %', '0,1 %', '49', '1.235']);
  });

  it('writes durations as h:mm:ss', () => {
    expect(formatDuration(0)).toBe('0:00:00');
    expect(formatDuration(36_000.4)).toBe('10:00:00');
    expect(formatDuration(-5)).toBe('0:00:00');
  });
});
