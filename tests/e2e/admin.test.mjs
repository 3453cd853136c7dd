// The administration pages end to end, in headless Chromium against a real bridge, everything
// through the page as an administrator would do it: log in on admin.html as `admin`; import a
// CSV file of sites (a province, a district, 3 communes; first a file with a bad line and one
// in Latin-1: refused, the line named, nothing stored); add a participant at one commune (a
// short password refused first); schedule a meeting inviting the district from tomorrow (a
// backwards end refused first, next to the form); find it in History with its times, links
// and quality; a meeting begun an hour ago shows its roll call, and, ended, is among those
// held. Then the participant: refused on admin.html with a clear message, and, on the home
// page (index.html), logged in, the meeting listed among the site's upcoming ones.
// Screenshots of the scheduling and history views go to tests/e2e/screenshots/ (ignored by git).
//
//   npm run build && cargo build -p signaling --bin bridge && node --test tests/e2e/admin.test.mjs
//
// BRIDGE_BIN overrides the bridge binary (default: target/debug/bridge of this repo).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  BRIDGE_BIN,
  CHROMIUM_ARGS,
  processGroup,
  REPO,
  startBridge,
  waitFor,
  WEB_ROOT,
} from './helpers.mjs';

const ADMIN_PASSWORD = 'e2e-admin-password';
const SCREENSHOTS = path.join(REPO, 'tests', 'e2e', 'screenshots');
const PERSON = { username: 'nguyen.an', displayName: 'Nguyễn Văn An', password: 'mật-khẩu-đại-biểu' };
const TITLE = 'Giao ban trực tuyến huyện Đông Hòa';

const SITES_CSV = [
  'code,name,level,parent_code,terminal_id',
  'T01,Ủy ban nhân dân tỉnh,tỉnh,,rt-t01',
  'H01,Huyện Đông Hòa,huyện,T01,rt-h01',
  'X001,Xã Hòa Bình,xã,H01,rt-x001',
  'X002,"Xã Hòa Đông, thôn 1",xã,H01,rt-x002',
  'X003,Xã Hòa Thành,xã,H01,',
].join('\n');
// Line 3 has a level the bridge does not know.
const BAD_CSV = ['code,name,level,parent_code,terminal_id', 'T09,Tỉnh,province,,', 'H09,Huyện,county,T09,'].join('\n');

/** Tomorrow in Vietnam (UTC+7) as YYYY-MM-DD, whatever the machine's time zone. */
function tomorrowInVietnam() {
  return new Date(Date.now() + 7 * 3600_000 + 24 * 3600_000).toISOString().slice(0, 10);
}

const text = (page, selector) => page.locator(selector).innerText();

/** Waits until the status line (role=status) holds `words`. */
async function statusSays(page, words, timeout = 10_000) {
  await waitFor(`the status line to say "${words}"`, timeout, async () => (await text(page, '#status')).includes(words));
}

async function logIn(page, base) {
  await page.goto(`${base}/admin.html`);
  await page.locator('#login-page').waitFor();
  await page.fill('#username', 'admin');
  await page.fill('#password', ADMIN_PASSWORD);
  await page.click('#login-form button[type="submit"]');
  await page.locator('#admin-page').waitFor();
  assert.equal(await page.getAttribute('#tab-sites', 'aria-selected'), 'true');
}

async function importSites(page) {
  const file = (name, body) => ({ name, mimeType: 'text/csv', buffer: Buffer.from(body, 'utf8') });
  await page.setInputFiles('#import-file', file('sai.csv', BAD_CSV));
  await page.click('#import-form button[type="submit"]');
  await page.locator('#import-errors').waitFor();
  const refusal = await text(page, '#import-errors');
  assert.match(refusal, /Dòng 3:/, refusal);
  assert.match(refusal, /H09,Huyện,county,T09,/, refusal);
  assert.equal(await page.getAttribute('#import-file', 'aria-invalid'), 'true');
  assert.equal(await page.locator('#sites-table [data-site-id]').count(), 0, 'a refused import stores nothing');
  // A file saved in another encoding than UTF-8 (here Latin-1) is sent as it is and refused.
  await page.setInputFiles('#import-file', {
    name: 'latin1.csv', mimeType: 'text/csv', buffer: Buffer.from('code,name,level,parent_code\nT09,Hà Tây,province,\n', 'latin1'),
  });
  await page.click('#import-form button[type="submit"]');
  await waitFor('the encoding refused', 5000, async () => /Dòng 2: the file is not UTF-8/.test(await text(page, '#import-errors')));

  await page.setInputFiles('#import-file', file('huyen-dong-hoa.csv', SITES_CSV));
  await page.click('#import-form button[type="submit"]');
  await statusSays(page, 'Đã nhập 5 điểm cầu');
  assert.ok(await page.locator('#import-errors').isHidden());
  await waitFor('5 sites in the table', 5000, async () => (await page.locator('#sites-table [data-site-id]').count()) === 5);
  const commune = await text(page, '#sites-table tr:has-text("Xã Hòa Bình")');
  assert.match(commune, /Cấp xã/);
  assert.match(commune, /Huyện Đông Hòa/, 'a commune shows its district');
  assert.match(commune, /Chưa cấp/, 'no device credential issued yet');
  // The filter ignores accents.
  await page.fill('#sites-filter', 'hoa dong');
  assert.equal(await page.locator('#sites-table [data-site-id]').count(), 2);
  await page.fill('#sites-filter', '');
}

async function addPerson(page) {
  await page.click('#tab-people');
  assert.ok(await page.locator('#panel-people').isVisible());
  assert.ok(await page.locator('#panel-sites').isHidden());
  await page.fill('#person-username', PERSON.username);
  await page.fill('#person-display-name', PERSON.displayName);
  await page.selectOption('#person-role', 'participant');
  await page.selectOption('#person-site', { label: 'Xã Hòa Bình (X001)' });
  await page.fill('#person-password', 'ngắn');
  await page.click('#person-form button[type="submit"]');
  await page.locator('#person-errors').waitFor();
  assert.match(await text(page, '#person-errors'), /ít nhất 8 ký tự/);
  await page.fill('#person-password', PERSON.password);
  await page.click('#person-form button[type="submit"]');
  await statusSays(page, `Đã thêm người dùng ${PERSON.username}`);
  const row = await text(page, `#people-table tr:has-text("${PERSON.username}")`);
  assert.match(row, /Người tham dự/);
  assert.match(row, /Xã Hòa Bình/);
}

async function scheduleMeeting(page) {
  // From the People tab to Scheduling with the keyboard, as the tabs pattern has it.
  await page.focus('#tab-people');
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.getAttribute('#tab-schedule', 'aria-selected'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'tab-schedule');
  const day = tomorrowInVietnam();
  await page.fill('#meeting-title', TITLE);
  await page.fill('#meeting-agenda', '1. Tình hình thực hiện nhiệm vụ tháng\n2. Ý kiến các xã');
  await page.fill('#meeting-document', '123/GM-UBND');
  assert.equal(await page.inputValue('#meeting-chair'), await page.evaluate(async () => String((await (await fetch('/api/me')).json()).person.id)));
  await page.check('#invite-district');
  await page.selectOption('#invite-district-select', { label: 'Huyện Đông Hòa (H01)' });
  assert.match(await text(page, '#invite-count'), /Sẽ mời 4 điểm cầu/);

  await page.fill('#meeting-start', `${day}T08:00`);
  await page.fill('#meeting-end', `${day}T10:30`);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'scheduling.png'), fullPage: true });

  // A backwards end is refused next to the form, before anything is sent.
  await page.fill('#meeting-end', `${day}T07:00`);
  await page.click('#schedule-form button[type="submit"]');
  await page.locator('#schedule-errors').waitFor();
  assert.match(await text(page, '#schedule-errors'), /Giờ kết thúc phải sau giờ bắt đầu/);
  assert.equal(await page.getAttribute('#meeting-end', 'aria-invalid'), 'true');

  await page.fill('#meeting-end', `${day}T10:30`);
  await page.click('#schedule-form button[type="submit"]');
  await statusSays(page, `Đã đặt lịch cuộc họp “${TITLE}”, mời 4 điểm cầu`);
  assert.ok(await page.locator('#schedule-errors').isHidden());
  assert.equal(await page.getAttribute('#meeting-end', 'aria-invalid'), null);
}

async function checkHistory(page) {
  await page.click('#tab-history');
  const entry = page.locator('#history-upcoming [data-meeting-id]', { hasText: TITLE });
  await entry.waitFor();
  const id = await entry.getAttribute('data-meeting-id');
  assert.equal(await entry.getAttribute('data-state'), 'scheduled');
  const [y, m, d] = tomorrowInVietnam().split('-');
  const shown = await entry.innerText();
  assert.match(shown, /Đã lên lịch/);
  assert.ok(shown.includes(`${d}/${m}/${y} 08:00 – ${d}/${m}/${y} 10:30`), shown);
  assert.match(shown, /Mời 4 điểm cầu/);
  assert.equal(await entry.locator('a', { hasText: 'Danh sách có mặt' }).getAttribute('href'), `/api/meetings/${id}/attendance.csv`);
  assert.equal(await entry.locator('a', { hasText: 'Báo cáo chất lượng' }).getAttribute('href'), `/api/meetings/${id}/quality.csv`);
  const csv = await page.evaluate(async (u) => (await fetch(u)).text(), `/api/meetings/${id}/attendance.csv`);
  assert.match(csv, /^site_code,site_name,person,joined_at/);
  await entry.locator('button', { hasText: 'Xem chất lượng' }).click();
  await entry.locator('[data-detail="quality"]').waitFor();
  assert.match(await entry.innerText(), /Chưa có số liệu chất lượng/);
  assert.equal(await entry.locator('button[aria-expanded]').getAttribute('aria-expanded'), 'true');

  // English on request, Vietnamese again after.
  await page.click('#lang');
  assert.equal(await text(page, '#tab-history'), 'History');
  assert.match(await entry.innerText(), /Scheduled/);
  await page.click('#lang');
  assert.equal(await text(page, '#tab-history'), 'Lịch sử');
  return id;
}

/** A meeting begun an hour ago: its roll call while it is open, then, ended, among those held. */
async function checkHeldMeeting(page) {
  const id = await page.evaluate(async () => {
    const sites = await (await fetch('/api/sites')).json();
    const district = sites.find((s) => s.code === 'H01').id;
    const at = (minutes) => new Date(Date.now() + minutes * 60_000).toISOString();
    const r = await fetch('/api/meetings', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'Họp đã bắt đầu', starts_at: at(-60), ends_at: at(60), invite: { kind: 'district', site_id: district } }),
    });
    return (await r.json()).id;
  });
  await page.click('#history-form button[type="submit"]');
  const open = page.locator(`#history-upcoming [data-meeting-id="${id}"]`);
  await open.waitFor();
  assert.equal(await open.getAttribute('data-state'), 'roll_call');
  await open.locator('button', { hasText: 'Xem điểm danh' }).click();
  await open.locator('[data-detail="roll-call"]').waitFor();
  assert.match(await open.innerText(), /0 đang họp, 0 đã kết nối nhưng chưa vào, 4 vắng mặt/);

  assert.equal(await page.evaluate(async (m) => (await fetch(`/api/meetings/${m}/end`, { method: 'POST' })).status, id), 200);
  await page.click('#history-form button[type="submit"]');
  const held = page.locator(`#history-past [data-meeting-id="${id}"]`);
  await held.waitFor();
  assert.equal(await held.getAttribute('data-state'), 'ended');
  assert.match(await held.innerText(), /Đã kết thúc/);
  assert.match(await held.innerText(), /Có mặt 0\/4 điểm cầu/);
  await statusSays(page, 'đã diễn ra trong khoảng thời gian đã chọn: 1 cuộc họp');
  await page.screenshot({ path: path.join(SCREENSHOTS, 'history.png'), fullPage: true });
}

test('an administrator sets up sites, a person and a meeting through admin.html', { timeout: 120_000 }, async () => {
  assert.ok(fs.existsSync(BRIDGE_BIN), `${BRIDGE_BIN} is missing (cargo build -p signaling --bin bridge)`);
  assert.ok(fs.existsSync(path.join(WEB_ROOT, 'admin.html')), 'run npm run build first');
  fs.mkdirSync(SCREENSHOTS, { recursive: true });

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-admin-'));
  const group = processGroup(tmp);
  let browser;
  let failed = true;
  try {
    const { base } = await startBridge(group, tmp, { adminPassword: ADMIN_PASSWORD });
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
    const newPage = async () => (await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 1100 }, locale: 'vi-VN' })).newPage();

    const admin = await newPage();
    await logIn(admin, base);
    await importSites(admin);
    await addPerson(admin);
    await scheduleMeeting(admin);
    const meetingId = await checkHistory(admin);
    await checkHeldMeeting(admin);

    // The participant may not administer, and is told so.
    const refused = await newPage();
    await refused.goto(`${base}/admin.html`);
    await refused.locator('#login-page').waitFor();
    await refused.fill('#username', PERSON.username);
    await refused.fill('#password', PERSON.password);
    await refused.click('#login-form button[type="submit"]');
    await refused.locator('#denied-page').waitFor();
    assert.match(await text(refused, '#denied-text'), /không có quyền quản trị/);
    assert.ok(await refused.locator('#admin-page').isHidden());

    // Last: the participant's home page lists the meeting among the site's upcoming ones.
    // (The home page's login and #upcoming list are another part of the web client.)
    const home = await newPage();
    await home.goto(`${base}/`);
    await home.locator('#login-form').waitFor({ timeout: 10_000 });
    await home.fill('#login-username', PERSON.username);
    await home.fill('#login-password', PERSON.password);
    await home.click('#login-form [type="submit"]');
    const listed = home.locator(`#upcoming [data-meeting-id="${meetingId}"]`);
    await listed.waitFor({ timeout: 10_000 });
    assert.ok((await home.locator('#upcoming').innerText()).includes(TITLE));
    failed = false;
  } finally {
    if (failed) group.dumpLogs(40);
    await browser?.close().catch(() => {});
    await group.stop();
    if (!failed && !process.env.E2E_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
  }
});
