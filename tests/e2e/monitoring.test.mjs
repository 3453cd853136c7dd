// Monitoring end to end: a room agent (GStreamer test sources) and a technician in headless
// Chromium are in a meeting; the SFU's test hook drops 20 % of the agent's RTP, as a lossy link
// would. The bridge's per-site series show it, a real Prometheus (Debian's package, scraping
// the bridge with deploy/prometheus/alerts.yml) fires SitePacketLoss for that site, the
// technician's page in the meeting gets the site graded poor and the loss alert over its
// WebSocket, the technicians' dashboard (dashboard.html, watching without taking part) shows
// the site's cell in alert, first in the grid, with the alert listed, and the meeting's quality
// report records the loss; when the loss stops, the alert stops, on the page and the dashboard.
// Screenshots of the dashboard go to tests/e2e/screenshots/ (ignored by git).
//
//   npm run build && cargo build -p signaling -p room-agent --bin bridge --bin room-agent && npm run test:e2e
//
// BRIDGE_BIN and ROOM_AGENT_BIN override the binaries (default: target/debug/ of this repo).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import {
  AGENT_BIN,
  agentConfig,
  BRIDGE_BIN,
  CHROMIUM_ARGS,
  freeTcpPort,
  httpsGet,
  pageState,
  processGroup,
  REPO,
  startBridge,
  waitFor,
  WEB_ROOT,
} from './helpers.mjs';

const ADMIN_PASSWORD = 'e2e-admin-password';
const PASSWORD = 'mật-khẩu-e2e';

/** GET a JSON document from Prometheus' HTTP API. */
function promGet(port, p) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p, timeout: 3000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (body += c));
        res.on('end', () => {
          try {
            resolve(JSON.parse(body));
          } catch (err) {
            reject(new Error(`${p}: ${body.slice(0, 200)}`));
          }
        });
      })
      .on('error', reject);
  });
}

test('a lossy site shows in the series, fires the alert in Prometheus and reaches the technician', { timeout: 300_000 }, async (t) => {
  for (const bin of [BRIDGE_BIN, AGENT_BIN, '/usr/bin/prometheus']) assert.ok(fs.existsSync(bin), `${bin} is missing`);
  assert.ok(fs.existsSync(path.join(WEB_ROOT, 'index.html')), 'run npm run build first');

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-monitoring-'));
  const group = processGroup(tmp);
  const promPort = await freeTcpPort();
  let browser;
  let failed = true;
  try {
    const { base, httpPort, api, login } = await startBridge(group, tmp, {
      adminPassword: ADMIN_PASSWORD, args: ['--test-hooks'],
    });
    const admin = await login('admin', ADMIN_PASSWORD);
    const csv = [
      'code,name,level,parent_code,terminal_id',
      'T01,Ủy ban nhân dân tỉnh,province,,rt-t01',
      'H01,Huyện Một,district,T01,rt-h01',
      'X001,Xã Một,commune,H01,rt-x001',
    ].join('\n');
    assert.equal((await api('POST', '/api/sites/import', admin, csv, 'text/csv')).status, 200);
    const sites = (await api('GET', '/api/sites', admin)).json();
    const x001 = sites.find((s) => s.code === 'X001').id;
    const t01 = sites.find((s) => s.code === 'T01').id;
    // The technician sits at the province (T01): its browser's decoding is reported for T01.
    const r = await api('POST', '/api/people', admin, {
      username: 'ky.thuat', display_name: 'Kỹ thuật viên', role: 'technician', site_id: t01, password: PASSWORD,
    });
    assert.equal(r.status, 201, r.body);
    const technician = await login('ky.thuat', PASSWORD);

    // The room agent of X001.
    const config = await agentConfig({
      base, adminToken: admin, siteId: x001, terminal: 'rt-x001', dir: tmp,
      video: ['layers = [{ height = 90, kbps = 100 }, { height = 180, kbps = 250 }]'],
    });
    group.launch(AGENT_BIN, ['--config', config], 'agent', { RUST_LOG: 'info' });

    const at = (s) => new Date(Date.now() + s * 1000).toISOString();
    const created = await api('POST', '/api/meetings', admin, {
      title: 'Giao ban có giám sát', starts_at: at(600), ends_at: at(4200), invite: { kind: 'all' }, mode: 'open',
    });
    assert.equal(created.status, 201, created.body);
    const meeting = created.json().id;

    // Prometheus scrapes the bridge every second and evaluates the project's alert rules.
    const promConfig = path.join(tmp, 'prometheus.yml');
    fs.writeFileSync(promConfig, [
      'global: {scrape_interval: 1s, evaluation_interval: 1s}',
      `rule_files: ["${path.join(REPO, 'deploy', 'prometheus', 'alerts.yml')}"]`,
      'scrape_configs:',
      '  - job_name: bridge',
      '    scheme: https',
      '    tls_config: {insecure_skip_verify: true}',
      `    static_configs: [{targets: ["127.0.0.1:${httpPort}"]}]`,
    ].join('\n'));
    group.launch('/usr/bin/prometheus', [
      `--config.file=${promConfig}`, `--storage.tsdb.path=${path.join(tmp, 'prometheus')}`,
      `--web.listen-address=127.0.0.1:${promPort}`, '--log.level=warn',
    ], 'prometheus');

    // The technician follows the meeting in Chromium.
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    await context.addCookies([{ name: 'bridge_session', value: technician, url: base }]);
    const page = await context.newPage();
    await page.goto(`${base}/?meeting=${meeting}`);
    await page.getByLabel('Tên hiển thị').fill('Kỹ thuật viên');
    await waitFor('the meeting list', 5_000, () => page.locator(`#meeting option[value="${meeting}"]`).count());
    await page.getByRole('button', { name: 'Vào phòng họp' }).click();
    await waitFor('the agent in the meeting, seen by the page', 60_000, async () => {
      const s = await pageState(page);
      return s.participants.some(([, name]) => name === 'rt-x001');
    }, 500);
    const pageQuality = () =>
      page.evaluate((site) => {
        const b = window.bridge;
        return { sample: b?.quality.get(site) ?? null, alerts: b ? [...b.alerts.keys()] : [] };
      }, x001);
    // The dashboard: another technician's tab, logged in through its own form.
    const dashContext = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    const dash = await dashContext.newPage();
    await dash.goto(`${base}/dashboard.html?meeting=${meeting}`);
    await dash.getByLabel('Tên đăng nhập').fill('ky.thuat');
    await dash.getByLabel('Mật khẩu').fill(PASSWORD);
    await dash.getByRole('button', { name: 'Đăng nhập' }).click();
    const cellOf = (site) => dash.locator(`.site-cell[data-site="${site}"]`);
    await waitFor('X001 good on the dashboard', 30_000, async () => (await cellOf(x001).getAttribute('data-state')) === 'good', 500);

    const clean = await waitFor('a clean sample of X001 on the page', 30_000, async () => {
      const q = await pageQuality();
      return q.sample && q.sample.loss === 0 && q.sample.kbps_in > 0 ? q.sample : null;
    }, 500);
    t.diagnostic(`X001 before: ${JSON.stringify(clean)}`);

    // 20 % of what X001 sends is lost on the way.
    const impaired = await api('POST', '/api/test/loss', admin, { site: x001, percent: 20 });
    assert.equal(impaired.status, 204, impaired.body);
    const lossyAt = Date.now();
    const poor = await waitFor('X001 graded poor on the page', 20_000, async () => {
      const q = await pageQuality();
      return q.sample && q.sample.grade === 'poor' && q.sample.loss > 0.1 ? q.sample : null;
    }, 500);
    t.diagnostic(`X001 with loss: ${JSON.stringify(poor)}`);

    // The series at /metrics.
    const series = (text, name) => {
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      return line === undefined ? null : Number(line.slice(name.length + 1));
    };
    const labels = `meeting="${meeting}",site="${x001}"`;
    const metrics = (await httpsGet(`${base}/metrics`)).body;
    const missing = series(metrics, `bridge_site_missing_packets_total{${labels},kind="audio"}`);
    const expected = series(metrics, `bridge_site_expected_packets_total{${labels},kind="audio"}`);
    assert.ok(missing > 0 && expected > 0, `audio missing ${missing} of ${expected}`);
    // What only the browser knows: the frames it decoded, reported for its site.
    const decoded = await waitFor('the browser\'s decoded frames at /metrics', 20_000, async () => {
      const text = (await httpsGet(`${base}/metrics`)).body;
      const n = series(text, `bridge_client_decoded_frames_total{meeting="${meeting}",site="${t01}"}`);
      return n > 0 ? n : null;
    }, 1000);
    t.diagnostic(`T01's browser decoded ${decoded} frames`);

    // Prometheus fires SitePacketLoss for X001; the bridge's own alert reaches the page.
    const firing = await waitFor('SitePacketLoss firing in Prometheus', 90_000, async () => {
      const alerts = (await promGet(promPort, '/api/v1/alerts')).data.alerts;
      return alerts.find((a) => a.labels.alertname === 'SitePacketLoss' && a.labels.site === String(x001) &&
        a.state === 'firing');
    }, 1000);
    t.diagnostic(`Prometheus fired ${Math.round((Date.now() - lossyAt) / 1000)} s after the loss began: ${firing.annotations.summary}`);
    await waitFor('the loss alert on the page', 30_000, async () => (await pageQuality()).alerts.includes(`loss:${x001}`), 500);
    await waitFor('X001 in alert, first on the dashboard', 15_000, async () => {
      const first = dash.locator('.site-cell').first();
      return (await first.getAttribute('data-site')) === String(x001) &&
        (await first.getAttribute('data-state')) === 'alert' &&
        (await dash.locator(`#alerts li[data-kind="loss"][data-site="${x001}"]`).count()) === 1;
    }, 500);
    await cellOf(x001).click();
    await waitFor('the site detail with its charts', 10_000, async () => (await dash.locator('#charts svg').count()) === 4, 500);
    const shots = path.join(REPO, 'tests', 'e2e', 'screenshots');
    fs.mkdirSync(shots, { recursive: true });
    await dash.screenshot({ path: path.join(shots, 'dashboard-loss-alert.png'), fullPage: true });
    // A command is one click away: the terminal is told to restart its pipeline.
    await dash.getByRole('button', { name: 'Khởi động lại' }).click();
    await waitFor('the command acknowledged', 10_000, async () =>
      (await dash.locator('#status').textContent()).includes('Đã gửi lệnh'), 250);
    const live = (await api('GET', `/api/meetings/${meeting}/quality`, technician)).json();
    assert.ok(live.alerts.some((a) => a.kind === 'loss' && a.site === x001), JSON.stringify(live.alerts));
    assert.ok(live.sites.find((s) => s.site === x001).samples.length >= 5);

    // The loss stops: the bridge's alert stops, the page is told.
    assert.equal((await api('POST', '/api/test/loss', admin, { site: x001, percent: 0 })).status, 204);
    await waitFor('the loss alert gone from the page', 20_000, async () => !(await pageQuality()).alerts.includes(`loss:${x001}`), 500);
    await waitFor('the alert gone from the dashboard', 20_000, async () =>
      (await dash.locator('#alerts li[data-kind]').count()) === 0 && (await cellOf(x001).getAttribute('data-state')) !== 'alert', 500);
    // Clean again, its video flowing after the restart (its RTP timestamps kept going forward).
    const recovered = await waitFor('X001 clean again, its video flowing', 30_000, async () => {
      const q = await pageQuality();
      return q.sample && q.sample.loss === 0 && q.sample.fps > 10 ? q.sample : null;
    }, 500);
    t.diagnostic(`X001 after: ${JSON.stringify(recovered)}`);

    // The quality report (stored every minute) has the loss.
    const report = await waitFor('X001 in the stored quality report', 70_000, async () => {
      const csvText = (await api('GET', `/api/meetings/${meeting}/quality.csv`, technician)).body;
      const line = csvText.split('\n').find((l) => l.startsWith('X001,'));
      return line && Number(line.split(',')[3]) > 1 ? line : null;
    }, 2000);
    t.diagnostic(`report: ${report}`);
    failed = false;
  } finally {
    if (failed) group.dumpLogs(40);
    await browser?.close().catch(() => {});
    await group.stop();
    if (!failed && !process.env.E2E_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
  }
});
