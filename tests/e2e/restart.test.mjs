// Restart safety: the bridge is killed with SIGKILL in the middle of a scheduled meeting and
// started again on the same data. The schedule, the attendance so far, the sessions and the
// audit log are intact; the two browsers (logged-in people of two invited sites) reconnect on
// their own, and media flows between them again.
//
//   npm run build && npm run test:e2e
//
// BRIDGE_BIN overrides the bridge binary (default: target/debug/bridge of this repo).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  BRIDGE_BIN,
  CHROMIUM_ARGS,
  flowing,
  freeTcpPort,
  freeUdpPort,
  httpsGet,
  httpsRequest,
  inboundStats,
  pageState,
  sleep,
  tail,
  waitFor,
  WEB_ROOT,
} from './helpers.mjs';

const ADMIN_PASSWORD = 'e2e-admin-password';
const PASSWORD = 'mật-khẩu-e2e';
const PEOPLE = [
  { username: 'xa.mot', name: 'Xã Một', site: 'X001' },
  { username: 'huyen.mot', name: 'Huyện Một', site: 'H01' },
];
const SITES_CSV = [
  'code,name,level,parent_code,terminal_id',
  'T01,Ủy ban nhân dân tỉnh,province,,',
  'H01,Huyện Một,district,T01,',
  'X001,Xã Một,commune,H01,',
].join('\n');

test('killed with -9 mid-meeting, the bridge comes back and the meeting goes on', { timeout: 240_000 }, async (t) => {
  assert.ok(fs.existsSync(BRIDGE_BIN), `bridge binary not found at ${BRIDGE_BIN}`);
  assert.ok(fs.existsSync(path.join(WEB_ROOT, 'index.html')), 'run npm run build first');

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-restart-'));
  const httpPort = await freeTcpPort();
  const mediaPort = await freeUdpPort();
  const base = `https://127.0.0.1:${httpPort}`;
  const logs = [];

  /** Starts the bridge on the test's ports and data; `run` numbers its log files. */
  function startBridge(run) {
    const stderrFile = path.join(tmp, `bridge-${run}.stderr.log`);
    logs.push(stderrFile);
    const err = fs.openSync(stderrFile, 'w');
    const proc = spawn(
      BRIDGE_BIN,
      [
        '--listen', `127.0.0.1:${httpPort}`,
        '--media-addr', `127.0.0.1:${mediaPort}`,
        '--data-dir', path.join(tmp, 'data'),
        '--web-root', WEB_ROOT,
      ],
      { stdio: ['ignore', 'ignore', err], env: { ...process.env, BRIDGE_ADMIN_PASSWORD: ADMIN_PASSWORD } },
    );
    fs.closeSync(err);
    const state = { exit: null };
    state.exited = new Promise((resolve) =>
      proc.on('exit', (code, signal) => resolve((state.exit = { code, signal }))),
    );
    state.proc = proc;
    return state;
  }
  let bridge = startBridge(1);
  const killNow = () => {
    if (bridge.exit === null) bridge.proc.kill('SIGKILL');
  };
  process.once('exit', killNow);
  const healthy = () =>
    waitFor('the bridge to answer /healthz', 60_000, async () => {
      if (bridge.exit) throw new Error(`bridge exited: ${JSON.stringify(bridge.exit)}`);
      return (await httpsGet(`${base}/healthz`)).status === 200;
    });

  let browser;
  const pages = [];
  const consoleLogs = PEOPLE.map(() => []);
  let failed = true;
  try {
    await healthy();
    const api = (method, p, token, body, contentType) =>
      httpsRequest(method, `${base}${p}`, { token, body, contentType });
    const login = async (username, password) => {
      const r = await api('POST', '/api/login', null, { username, password });
      assert.equal(r.status, 200, r.body);
      return r.json().token;
    };

    // The register, two people of two sites, a meeting in roll call inviting all three.
    const admin = await login('admin', ADMIN_PASSWORD);
    const imported = await api('POST', '/api/sites/import', admin, SITES_CSV, 'text/csv');
    assert.equal(imported.status, 200, imported.body);
    const sites = (await api('GET', '/api/sites', admin)).json();
    const siteId = (code) => sites.find((s) => s.code === code).id;
    const tokens = [];
    for (const p of PEOPLE) {
      const r = await api('POST', '/api/people', admin, {
        username: p.username, display_name: p.name, role: 'participant',
        site_id: siteId(p.site), password: PASSWORD,
      });
      assert.equal(r.status, 201, r.body);
      tokens.push(await login(p.username, PASSWORD));
    }
    const at = (s) => new Date(Date.now() + s * 1000).toISOString();
    const created = await api('POST', '/api/meetings', admin, {
      title: 'Họp kiểm thử khởi động lại', starts_at: at(600), ends_at: at(4200),
      // Open mode: in floor mode (the default) neither would hear the other, neither being
      // the chair nor holding the floor.
      invite: { kind: 'all' }, mode: 'open',
    });
    assert.equal(created.status, 201, created.body);
    const meeting = created.json();
    assert.equal(meeting.state, 'roll_call');

    // Both people enter from their browsers, logged in by their session cookie.
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
    for (const [i, p] of PEOPLE.entries()) {
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      await context.addCookies([{ name: 'bridge_session', value: tokens[i], url: base }]);
      const page = await context.newPage();
      page.on('console', (msg) => consoleLogs[i].push(`[${msg.type()}] ${msg.text()}`));
      await page.goto(`${base}/?meeting=${meeting.id}`);
      await page.getByLabel('Tên hiển thị').fill(p.name);
      await waitFor('the meeting list', 5_000, () =>
        page.locator(`#meeting option[value="${meeting.id}"]`).count(),
      );
      await page.getByRole('button', { name: 'Vào phòng họp' }).click();
      pages.push(page);
    }

    /**
     * Each page's participant id, once welcomed with the other one present, in a session the
     * test has not marked as old (ids start again at 1 after a restart).
     */
    const ids = async (label) =>
      Promise.all(pages.map((page, i) =>
        waitFor(`${PEOPLE[i].name} ${label}`, 60_000, async () => {
          const fresh = await page.evaluate(() => window.bridge && !window.bridge.markedOld);
          const s = await pageState(page);
          return fresh && s.participantId !== null && s.participants.length === 1 ? s.participantId : null;
        }, 250)));
    /** Video and audio from the other page rise on each page. */
    const mediaFlows = (label, who) =>
      Promise.all(pages.map(async (page, i) => {
        let before = await inboundStats(page);
        await waitFor(`${label} on ${PEOPLE[i].name}'s page`, 30_000, async () => {
          await sleep(1000);
          const after = await inboundStats(page);
          const missing = flowing(before, after, [who[1 - i]]);
          before = after;
          if (missing.length > 0) throw new Error(`not rising: ${missing.join(', ')}`);
          return true;
        }, 0);
      }));

    const first = await ids('to be welcomed');
    await mediaFlows('media before the crash', first);
    t.diagnostic(`in the meeting as ${first}; killing the bridge with SIGKILL`);

    await Promise.all(pages.map((page) => page.evaluate(() => { window.bridge.markedOld = true; })));
    bridge.proc.kill('SIGKILL');
    await bridge.exited;
    assert.equal(bridge.exit.signal, 'SIGKILL');
    const down = Date.now();
    bridge = startBridge(2);
    await healthy();

    // Nobody does anything: both pages are back, with media, on their own.
    const second = await ids('to be back after the restart');
    await mediaFlows('media after the restart', second);
    t.diagnostic(`back as ${second} ${Date.now() - down} ms after the kill`);

    // The stored state survived: sessions, the meeting, attendance, the audit log.
    const again = await api('GET', `/api/meetings/${meeting.id}`, admin);
    assert.equal(again.status, 200, 'the administrator\'s session survived');
    assert.equal(again.json().state, 'roll_call');
    assert.deepEqual(again.json().site_ids, meeting.site_ids);
    const csv = (await api('GET', `/api/meetings/${meeting.id}/attendance.csv`, admin)).body;
    for (const p of PEOPLE) {
      const rows = csv.split('\r\n').filter((l) => l.startsWith(`${p.site},`));
      assert.equal(rows.length, 2, `${p.site}: a stay before and one after the crash:\n${csv}`);
      const [, , , joined, left, , stay] = rows[0].split(',');
      assert.ok(left && Date.parse(left) >= Date.parse(joined), `the first stay was closed: ${rows[0]}`);
      assert.equal(stay, '1');
      assert.equal(rows[1].split(',')[6], '2');
    }
    const audit = (await api('GET', '/api/audit', admin)).json();
    for (const action of ['site.create', 'person.create', 'meeting.create']) {
      assert.ok(audit.some((e) => e.action === action), `${action} in the audit log`);
    }
    failed = false;
  } finally {
    if (failed) {
      for (const [i, page] of pages.entries()) {
        try {
          console.error(`---- ${PEOPLE[i].name}: page state ----`);
          console.error(JSON.stringify(await pageState(page), null, 2));
        } catch (err) {
          console.error(`(no state: ${err.message})`);
        }
        console.error(consoleLogs[i].slice(-30).join('\n'));
      }
      for (const file of logs) console.error(`---- ${file} ----\n${tail(file, 40)}`);
    }
    await browser?.close().catch(() => {});
    if (bridge.exit === null) {
      bridge.proc.kill('SIGTERM');
      await Promise.race([bridge.exited, sleep(3_000)]);
      killNow();
    }
    process.removeListener('exit', killNow);
    if (!failed && !process.env.E2E_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
  }
});
