// Browser end-to-end test: three headless Chromium participants meet through a real bridge.
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
  inboundStats,
  metricValue,
  pageState,
  REPO,
  sendGarbage,
  sentLayerHeights,
  sleep,
  tail,
  waitFor,
  WEB_ROOT,
} from './helpers.mjs';

const SCREENSHOT = path.join(REPO, 'tests', 'e2e', 'screenshots', 'meeting.png');
const NAMES = ['Anh', 'Bình', 'Chi'];

// ---- the test ----------------------------------------------------------------------------

test('three browsers meet through the bridge', { timeout: 180_000 }, async (t) => {
  assert.ok(
    fs.existsSync(BRIDGE_BIN),
    `bridge binary not found at ${BRIDGE_BIN} (build it: cargo build -p signaling --bin bridge, or set BRIDGE_BIN)`,
  );
  assert.ok(
    fs.existsSync(path.join(WEB_ROOT, 'index.html')),
    `${WEB_ROOT}/index.html is missing: run npm run build first`,
  );

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-e2e-'));
  const stderrFile = path.join(tmp, 'bridge.stderr.log');
  const stdoutFile = path.join(tmp, 'bridge.stdout.log');
  const httpPort = await freeTcpPort();
  const mediaPort = await freeUdpPort();
  const base = `https://127.0.0.1:${httpPort}`;

  const out = fs.openSync(stdoutFile, 'w');
  const err = fs.openSync(stderrFile, 'w');
  const bridge = spawn(
    BRIDGE_BIN,
    [
      '--listen', `127.0.0.1:${httpPort}`,
      '--media-addr', `127.0.0.1:${mediaPort}`,
      '--data-dir', path.join(tmp, 'data'),
      '--web-root', WEB_ROOT,
    ],
    // Allocation changes are logged at debug: kept with the bridge's log for a failing run.
    { stdio: ['ignore', out, err], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info,sfu=debug' } },
  );
  fs.closeSync(out);
  fs.closeSync(err);
  let bridgeExit = null;
  const exited = new Promise((resolve) =>
    bridge.on('exit', (code, signal) => resolve((bridgeExit = { code, signal }))),
  );
  bridge.on('error', (e) => (bridgeExit = { error: e.message }));
  const killNow = () => {
    if (bridgeExit === null) bridge.kill('SIGKILL');
  };
  // Also when the test runner stops this process (Ctrl-C, a runner time-out).
  const onSignal = (signal) => {
    killNow();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('exit', killNow);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  /** SIGTERM, then SIGKILL if the bridge is still there after 3 s. */
  const stopBridge = async () => {
    if (bridgeExit !== null) return;
    bridge.kill('SIGTERM');
    await Promise.race([exited, sleep(3_000)]);
    killNow();
  };

  let browser;
  const pages = [];
  const consoleLogs = NAMES.map(() => []);
  const lastSeen = {}; // diagnostics: the latest stats and state seen on each page
  let failed = true;

  try {
    t.diagnostic(`bridge ${BRIDGE_BIN} on ${base}, media udp ${mediaPort}, temp ${tmp}`);
    await waitFor('the bridge to answer /healthz', 60_000, async () => {
      if (bridgeExit) throw new Error(`bridge exited early: ${JSON.stringify(bridgeExit)}`);
      return (await httpsGet(`${base}/healthz`)).status === 200;
    });

    const meetings = JSON.parse((await httpsGet(`${base}/api/meetings`)).body);
    assert.ok(Array.isArray(meetings) && meetings.some((m) => m.id === 1), 'demo meeting 1 exists');

    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: CHROMIUM_ARGS,
    });
    for (const [i, name] of NAMES.entries()) {
      const context = await browser.newContext({ ignoreHTTPSErrors: true });
      const page = await context.newPage();
      page.on('console', (msg) => consoleLogs[i].push(`[${msg.type()}] ${msg.text()}`));
      page.on('pageerror', (err) => consoleLogs[i].push(`[pageerror] ${err.message}`));
      await page.goto(`${base}/?meeting=1`);
      await page.getByLabel('Tên hiển thị').fill(name);
      await waitFor('the meeting list', 5_000, () =>
        page.locator('#meeting option[value="1"]').count(),
      );
      pages.push(page);
    }

    // Everyone clicks at once: the server must cope with simultaneous publications.
    const joinedAt = Date.now();
    await Promise.all(
      pages.map((page) => page.getByRole('button', { name: 'Vào phòng họp' }).click()),
    );

    const ids = await Promise.all(
      pages.map((page, i) =>
        waitFor(`${NAMES[i]} to be welcomed`, 10_000, () =>
          page.evaluate(() => window.bridge?.participantId ?? null),
        ),
      ),
    );
    t.diagnostic(`participant ids: ${NAMES.map((n, i) => `${n}=${ids[i]}`).join(', ')}`);
    const othersOf = (i) => ids.filter((_, j) => j !== i);

    /** Waits until every page in `which` sees media flowing from all its (remaining) others. */
    const expectFlow = (label, which, owners, timeout, opts) =>
      Promise.all(
        which.map(async (i) => {
          let before = await inboundStats(pages[i]);
          await waitFor(`${label} on ${NAMES[i]}'s page`, timeout, async () => {
            await sleep(1000);
            const after = await inboundStats(pages[i]);
            const missing = flowing(before, after, owners(i), opts);
            lastSeen[NAMES[i]] = { missing, stats: after };
            before = after;
            if (missing.length > 0) throw new Error(`not rising: ${missing.join(', ')}`);
            return true;
          }, 0);
        }),
      );

    // 1. Both others' video and audio reach every page within 10 s of joining.
    await expectFlow('video and audio from both others', [0, 1, 2], othersOf,
      Math.max(2_000, 10_000 - (Date.now() - joinedAt)));
    t.diagnostic(`media flowing everywhere ${Date.now() - joinedAt} ms after joining`);
    for (const [i, page] of pages.entries()) {
      const fps = (await inboundStats(page))
        .filter((s) => s.kind === 'video')
        .map((s) => `${s.owner}: ${s.framesPerSecond} fps`);
      t.diagnostic(`${NAMES[i]} receives video ${fps.join(', ')}`);
    }

    // 2. Each page names the other two.
    await Promise.all(
      pages.map((page, i) =>
        waitFor(`${NAMES[i]}'s page to show the others' names`, 5_000, async () => {
          const names = await page.locator('.tile-name').allTextContents();
          lastSeen[`${NAMES[i]} names`] = names;
          return NAMES.filter((_, j) => j !== i).every((n) => names.includes(n));
        }),
      ),
    );

    // The SFU detects a dominant speaker from the audio levels: every page marks the same
    // participant's tile, and only that one.
    const speakers = await Promise.all(
      pages.map((page, i) =>
        waitFor(`${NAMES[i]}'s page to mark the dominant speaker`, 10_000, async () => {
          const marked = await page.locator('.tile.speaking').evaluateAll(
            (els) => els.map((el) => el.dataset.participantId));
          lastSeen[`${NAMES[i]} speaking`] = marked;
          return marked.length === 1 ? marked[0] : null;
        }),
      ),
    );
    assert.ok(speakers.every((s) => s === speakers[0]), `one dominant speaker: ${speakers}`);
    t.diagnostic(`dominant speaker: participant ${speakers[0]}`);

    // Simulcast: each page shows the others in tiles about 230 px high; the SFU forwards at
    // most the smallest layer its sender sends that fills the tile, never the sender's top
    // layer for its own sake. (A sender short of CPU may drop its top layer for a while: the
    // expectation follows what each one actually sends. The SFU's bandwidth allocator may
    // choose a lower layer still while its estimate towards a receiver is low.)
    const layers = await waitFor('each video to arrive in a layer no bigger than its tile needs', 15_000, async () => {
      const sent = await Promise.all(pages.map(sentLayerHeights));
      const rows = [];
      for (const [i, page] of pages.entries()) {
        const tile = await page.locator('.tile:not(.self)').first().evaluate((el) => el.clientHeight);
        for (const s of (await inboundStats(page)).filter((s) => s.kind === 'video')) {
          const layers = sent[ids.indexOf(s.owner)];
          const expected = layers.find((h) => h >= tile) ?? layers[layers.length - 1];
          rows.push({ receiver: NAMES[i], owner: s.owner, tile, height: s.frameHeight, layers, expected });
        }
      }
      lastSeen.layers = rows;
      const fit = rows.length === 6 && rows.every((r) => r.height > 0 && r.height <= r.expected);
      const belowTop = rows.some((r) => r.height < r.layers[r.layers.length - 1]);
      return fit && belowTop ? rows : null;
    });
    for (const r of layers) {
      t.diagnostic(`${r.receiver} gets ${r.owner} at ${r.height}p (tile ${r.tile}px; sent ${r.layers.join('/')})`);
    }

    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await pages[0].screenshot({ path: SCREENSHOT });

    // 3. Garbage datagrams at the media port: dropped and counted, media keeps flowing.
    const droppedBefore = metricValue(
      (await httpsGet(`${base}/metrics`)).body, 'bridge_sfu_datagrams_dropped_total') ?? 0;
    await sendGarbage(mediaPort, 200);
    await expectFlow('video after garbage datagrams', [0, 1, 2], othersOf, 10_000, { audio: false });
    const dropped = await waitFor('the dropped-datagram counter to reach 200', 5_000, async () => {
      const value = metricValue(
        (await httpsGet(`${base}/metrics`)).body, 'bridge_sfu_datagrams_dropped_total');
      lastSeen.dropped = value;
      return value !== null && value >= 200 ? value : null;
    });
    t.diagnostic(`bridge_sfu_datagrams_dropped_total ${droppedBefore} -> ${dropped}`);
    assert.equal(bridgeExit, null, 'the bridge is still running');

    // 4. The third participant closes the tab: the others see the tile go.
    const goneId = ids[2];
    await pages[2].close();
    await Promise.all(
      [0, 1].map((i) =>
        waitFor(`${NAMES[i]}'s page to drop ${NAMES[2]}`, 5_000, async () => {
          const state = await pageState(pages[i]);
          lastSeen[`${NAMES[i]} state`] = state;
          const tile = state.tiles.some((tile) => tile.id === String(goneId));
          const listed = state.participants.some(([id]) => id === goneId);
          return !tile && !listed;
        }),
      ),
    );
    await expectFlow('video and audio between the two left', [0, 1], (i) => [ids[1 - i]], 10_000);

    // 5. No page threw, and no signaling step failed (each server offer was answered).
    const problems = consoleLogs.flatMap((lines, i) =>
      lines
        .filter((l) => l.startsWith('[pageerror]') || l.includes('signaling failed'))
        .map((l) => `${NAMES[i]}: ${l}`),
    );
    assert.deepEqual(problems, [], 'page errors or failed signaling steps');
    failed = false;
  } finally {
    if (failed) {
      console.error('---- last stats and state seen ----');
      console.error(JSON.stringify(lastSeen, null, 2));
      for (const [i, page] of pages.entries()) {
        if (page.isClosed()) continue;
        try {
          console.error(`---- ${NAMES[i]}: page state ----`);
          console.error(JSON.stringify(await pageState(page), null, 2));
          console.error(JSON.stringify(await inboundStats(page), null, 2));
        } catch (err) {
          console.error(`(no state from ${NAMES[i]}: ${err.message})`);
        }
      }
      for (const [i, lines] of consoleLogs.entries()) {
        console.error(`---- ${NAMES[i]}: browser console (last 30) ----`);
        console.error(lines.slice(-30).join('\n'));
      }
      console.error(`---- bridge exit: ${JSON.stringify(bridgeExit)} ----`);
      console.error(`---- bridge stdout (${stdoutFile}) ----\n${tail(stdoutFile, 20)}`);
      console.error(`---- bridge stderr (${stderrFile}) ----\n${tail(stderrFile)}`);
    }
    await browser?.close().catch(() => {});
    await stopBridge();
    process.removeListener('exit', killNow);
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (!failed && !process.env.E2E_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
  }
});
