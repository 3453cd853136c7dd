// The web client as a chair and three communes use it, in headless Chromium: everyone logs in
// on the home page and enters a scheduled floor-mode meeting from its list of upcoming
// meetings. While every page shows Xã An's camera small (gallery tiles), the SFU has An's page
// stop its top simulcast layer (layer suspension): the encoding is turned off and sends no more.
// An asks for the floor from its page; the chair sees the request in its panel and grants it;
// every page then hears that commune and no other commune (inbound audio in getStats, by the
// participant each audio slot carries) and shows it large: its top layer is sent again and
// decoded bigger. The chair takes the floor back and the commune is heard no more. A commune
// shares a document (an image file, chosen through the page) and the others decode it large.
// The chair ends the meeting and every page is back home. Screenshots of the meeting, the
// chair's view and the home page go to tests/e2e/screenshots/ (ignored by git).
//
//   npm run build && cargo build -p signaling --bin bridge && npm run test:e2e
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
  inboundStats,
  processGroup,
  REPO,
  sleep,
  startBridge,
  waitFor,
  WEB_ROOT,
} from './helpers.mjs';

const ADMIN_PASSWORD = 'e2e-admin-password';
const PASSWORD = 'mật-khẩu-e2e';
const SHOTS = path.join(REPO, 'tests', 'e2e', 'screenshots');
const SITES_CSV = [
  'code,name,level,parent_code,terminal_id',
  'T01,Ủy ban nhân dân tỉnh,province,,',
  'H01,Huyện Một,district,T01,',
  'X001,Xã An,commune,H01,',
  'X002,Xã Bình,commune,H01,',
  'X003,Xã Chi,commune,H01,',
].join('\n');
const CHAIR = { username: 'chu.toa', name: 'Chủ tọa huyện', site: 'H01', role: 'chair' };
const COMMUNES = [
  { username: 'xa.an', name: 'Xã An', site: 'X001', role: 'participant' },
  { username: 'xa.binh', name: 'Xã Bình', site: 'X002', role: 'participant' },
  { username: 'xa.chi', name: 'Xã Chi', site: 'X003', role: 'participant' },
];
const TITLE = 'Giao ban huyện tháng 12';

/**
 * Per participant whose audio this page receives now: samples and audio energy so far
 * (inbound-rtp audio, attributed by the slot that carries it).
 */
function audioByOwner(page) {
  return page.evaluate(async () => {
    const b = window.bridge;
    if (!b || !b.pc) return {};
    const out = {};
    (await b.pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'audio') return;
      const owner = b.trackOwner.get(s.trackIdentifier);
      if (owner === undefined) return;
      const o = (out[owner] ??= { samples: 0, energy: 0 });
      o.samples += s.totalSamplesReceived ?? 0;
      o.energy += s.totalAudioEnergy ?? 0;
    });
    return out;
  });
}

/** Whose audio rose on `page` over `ms`: participant ids whose samples and energy grew. */
async function heardOver(page, ms) {
  const before = await audioByOwner(page);
  await sleep(ms);
  const after = await audioByOwner(page);
  return Object.keys(after)
    .map(Number)
    .filter((id) => {
      const a = after[id];
      const b = before[id] ?? { samples: 0, energy: 0 };
      return a.samples > b.samples && a.energy > b.energy;
    })
    .sort((x, y) => x - y);
}

/** Per participant whose camera this page decodes now: frames decoded so far. */
function videoByOwner(page) {
  return page.evaluate(async () => {
    const b = window.bridge;
    const content = [...document.querySelectorAll('.tile.content video')].map((v) => v.srcObject?.getVideoTracks()[0]?.id);
    const out = {};
    (await b.pc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp' || s.kind !== 'video' || content.includes(s.trackIdentifier)) return;
      const owner = b.trackOwner.get(s.trackIdentifier);
      if (owner !== undefined) out[owner] = (out[owner] ?? 0) + (s.framesDecoded ?? 0);
    });
    return out;
  });
}

/** Whose camera video `page` decoded more of over `ms`. */
async function seenOver(page, ms) {
  const before = await videoByOwner(page);
  await sleep(ms);
  const after = await videoByOwner(page);
  return Object.keys(after).map(Number).filter((id) => after[id] > (before[id] ?? 0)).sort((x, y) => x - y);
}

/**
 * The camera `page` sends: each simulcast encoding's `active` flag as the page set it on its
 * sender, lowest first (`flags`) and by rid (`active`), the bytes sent so far by rid
 * (outbound-rtp), and how many layers the SFU last allowed (`allowed`; 3 until it said).
 */
function cameraSent(page) {
  return page.evaluate(async () => {
    const b = window.bridge;
    // The camera's transceiver is the one with simulcast encodings (the presentation has one).
    const camera = b.pc.getTransceivers().find((t) => t.sender.getParameters().encodings.some((e) => e.rid === 'f'));
    const encodings = camera.sender.getParameters().encodings;
    const bytes = {};
    (await camera.sender.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.rid) bytes[s.rid] = s.bytesSent ?? 0;
    });
    return {
      flags: encodings.map((e) => e.active !== false),
      active: Object.fromEntries(encodings.map((e) => [e.rid, e.active !== false])),
      bytes,
      allowed: b.sendLayers.get(camera.mid) ?? encodings.length,
    };
  });
}

/** Audio packets `page` has sent so far (outbound-rtp of its microphone). */
function audioPacketsSent(page) {
  return page.evaluate(async () => {
    let sent = 0;
    (await window.bridge.pc.getStats()).forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'audio') sent += s.packetsSent ?? 0;
    });
    return sent;
  });
}

/** The largest frame height of `owner`'s video that `page` decodes now (0: none). */
async function decodedHeight(page, owner) {
  const heights = (await inboundStats(page)).filter((s) => s.kind === 'video' && s.owner === owner).map((s) => s.frameHeight);
  return Math.max(0, ...heights);
}

/** The indexes of the pages among `pages` that show participant `id`'s tile large. */
async function shownLarge(pages, id) {
  const large = await Promise.all(pages.map((page) => page.locator(`.tile.main[data-participant-id="${id}"]`).count()));
  return large.flatMap((n, i) => (n > 0 ? [i] : []));
}

/** Controls of the page that are visible and have no accessible name. */
function unlabelled(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll('button, select, input, a')]
      .filter((el) => el.offsetParent !== null)
      .filter((el) => {
        const own = (el.getAttribute('aria-label') ?? '').trim() || (el.textContent ?? '').trim();
        const labelled = el.labels && [...el.labels].some((l) => l.textContent.trim());
        return !own && !labelled;
      })
      .map((el) => el.outerHTML.slice(0, 80)));
}

/** The ICE user fragment this page's peer connection uses now (the remote side's). */
function remoteUfrag(page) {
  return page.evaluate(() => /a=ice-ufrag:(\S+)/.exec(window.bridge.pc.remoteDescription?.sdp ?? '')?.[1] ?? null);
}

/**
 * A PDF of `texts.length` pages, page n showing texts[n] in large letters (ASCII), with its
 * cross-reference table computed.
 */
function pdfOf(texts) {
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    `<< /Type /Pages /Kids [${texts.map((_, i) => `${4 + 2 * i} 0 R`).join(' ')}] /Count ${texts.length} >>`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  for (const [i, text] of texts.entries()) {
    const content = `BT /F1 96 Tf 80 300 Td (${text}) Tj ET`;
    objects.push(`<< /Type /Page /Parent 2 0 R /MediaBox [0 0 842 595] /Resources << /Font << /F1 3 0 R >> >> /Contents ${5 + 2 * i} 0 R >>`);
    objects.push(`<< /Length ${content.length} >>\nstream\n${content}\nendstream`);
  }
  let body = '%PDF-1.4\n';
  const offsets = [];
  for (const [i, o] of objects.entries()) {
    offsets.push(body.length);
    body += `${i + 1} 0 obj\n${o}\nendobj\n`;
  }
  const xref = body.length;
  body += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) body += `${String(off).padStart(10, '0')} 00000 n \n`;
  body += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(body, 'latin1');
}

/** A rough fingerprint of the presentation's picture as `page` shows it now. */
function contentPicture(page) {
  return page.evaluate(() => {
    const video = document.querySelector('.tile.content video');
    if (!video || !video.videoWidth) return null;
    const canvas = document.createElement('canvas');
    canvas.width = 64;
    canvas.height = 36;
    const ctx = canvas.getContext('2d');
    ctx.drawImage(video, 0, 0, 64, 36);
    const data = ctx.getImageData(0, 0, 64, 36).data;
    // Dark pixels per column: where the letters are.
    const columns = [];
    for (let x = 0; x < 64; x++) {
      let dark = 0;
      for (let y = 0; y < 36; y++) if (data[(y * 64 + x) * 4] < 128) dark++;
      columns.push(dark);
    }
    return columns;
  });
}

/** Frames decoded, and the frame size, of the presentation arriving on `page`. */
function contentStats(page) {
  return page.evaluate(async () => {
    const b = window.bridge;
    if (!b || !b.pc || b.contentOwner === null) return null;
    const tracks = [...document.querySelectorAll('.tile.content video')]
      .map((v) => v.srcObject?.getVideoTracks()[0]?.id)
      .filter(Boolean);
    let found = null;
    (await b.pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video' && tracks.includes(s.trackIdentifier)) {
        found = { owner: b.contentOwner, frames: s.framesDecoded ?? 0, width: s.frameWidth ?? 0, height: s.frameHeight ?? 0 };
      }
    });
    return found;
  });
}

test('a chair and three communes: floor, presentation and the end, through the pages', { timeout: 300_000 }, async (t) => {
  assert.ok(fs.existsSync(BRIDGE_BIN), `bridge binary not found at ${BRIDGE_BIN}`);
  assert.ok(fs.existsSync(path.join(WEB_ROOT, 'index.html')), 'run npm run build first');
  fs.mkdirSync(SHOTS, { recursive: true });

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-floor-'));
  const group = processGroup(tmp);
  let browser;
  let failed = true;
  const consoleLogs = new Map();
  try {
    const { base, api, login: loginApi } = await startBridge(group, tmp, { adminPassword: ADMIN_PASSWORD });

    // The register, four people, and a floor-mode meeting of the district in roll call.
    const admin = await loginApi('admin', ADMIN_PASSWORD);
    assert.equal((await api('POST', '/api/sites/import', admin, SITES_CSV, 'text/csv')).status, 200);
    const sites = (await api('GET', '/api/sites', admin)).json();
    const siteOf = (code) => sites.find((s) => s.code === code).id;
    for (const p of [CHAIR, ...COMMUNES]) {
      const r = await api('POST', '/api/people', admin, {
        username: p.username, display_name: p.name, role: p.role, site_id: siteOf(p.site), password: PASSWORD,
      });
      assert.equal(r.status, 201, r.body);
    }
    const chairId = (await api('GET', '/api/people', admin)).json().find((p) => p.username === CHAIR.username).id;
    const at = (s) => new Date(Date.now() + s * 1000).toISOString();
    const created = await api('POST', '/api/meetings', admin, {
      title: TITLE, starts_at: at(600), ends_at: at(4200), chair_id: chairId,
      invite: { kind: 'district', site_id: siteOf('H01') }, mode: 'floor',
    });
    assert.equal(created.status, 201, created.body);
    const meeting = created.json();
    assert.equal(meeting.state, 'roll_call');

    // Everyone logs in on the home page and enters from the list of upcoming meetings.
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS });
    const open = async (person) => {
      const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1366, height: 860 } });
      const page = await context.newPage();
      const lines = [];
      consoleLogs.set(person.username, lines);
      page.on('console', (msg) => lines.push(`[${msg.type()}] ${msg.text()}`));
      page.on('pageerror', (err) => lines.push(`[pageerror] ${err.message}`));
      await page.goto(`${base}/`);
      await page.getByLabel('Tên đăng nhập').fill(person.username);
      await page.getByLabel('Mật khẩu').fill(PASSWORD);
      await page.locator('#login-form').getByRole('button', { name: 'Đăng nhập' }).click();
      const entry = page.locator(`#upcoming [data-meeting-id="${meeting.id}"]`);
      await entry.waitFor({ timeout: 10_000 });
      assert.ok((await entry.textContent()).includes(TITLE));
      await entry.getByRole('button', { name: `Vào họp: ${TITLE}` }).click();
      return page;
    };
    const chair = await open(CHAIR);
    const communes = [];
    for (const p of COMMUNES) communes.push(await open(p));
    const all = [chair, ...communes];
    const ids = await Promise.all(all.map((page) =>
      waitFor('welcomed with the three others', 30_000, () =>
        page.evaluate(() => (window.bridge?.participants.size === 3 ? window.bridge.participantId : null)))));
    const [chairPid, anPid, binhPid, chiPid] = ids;
    t.diagnostic(`participants: chair ${chairPid}, An ${anPid}, Bình ${binhPid}, Chi ${chiPid}`);

    // The chair's panel: every commune in the meeting.
    await chair.locator('#chair-panel').waitFor({ state: 'visible', timeout: 10_000 });
    for (const p of COMMUNES) {
      await waitFor(`${p.site} joined in the chair's roll call`, 20_000, async () =>
        (await chair.locator(`#roll-call li[data-site="${siteOf(p.site)}"]`).getAttribute('data-presence')) === 'joined');
    }
    assert.ok(await communes[0].locator('#chair-panel').isHidden(), 'communes have no chair panel');
    for (const [i, page] of [chair, communes[0]].entries()) {
      assert.deepEqual(await unlabelled(page), [], `page ${i}: every control has a name`);
    }

    // Floor mode: only the chair is heard, by everyone.
    await waitFor('the chair heard on every commune page, nobody else', 30_000, async () => {
      const heard = await Promise.all(communes.map((page) => heardOver(page, 1500)));
      return heard.every((h) => h.length === 1 && h[0] === chairPid) ? heard : null;
    }, 0);

    // Layer suspension. Until An holds the floor every page shows its camera in a small gallery
    // tile (the communes' stages have the chair, the first speaker and so the dominant one; the
    // chair's stage is empty): nobody wants An's top layer, so 5 s after the last page said so
    // the SFU asks An's page to stop it. The encoding is turned off and its bytes stop growing;
    // Bình's page decodes An small.
    const suspended = await waitFor("An's top camera layer turned off", 15_000, async () => {
      const now = await cameraSent(communes[0]);
      if (now.active.f !== false) {
        throw new Error(`still on: ${JSON.stringify(now)}; pages showing An large: ${await shownLarge(all, anPid)}`);
      }
      return now;
    });
    const stopped = await waitFor("no more bytes of An's top layer", 10_000, async () => {
      const first = await cameraSent(communes[0]);
      await sleep(2000);
      const then = await cameraSent(communes[0]);
      return then.active.f === false && then.bytes.f === first.bytes.f ? then : null;
    }, 0);
    const smallHeight = await waitFor("An's camera decoded on Bình's page", 10_000, () => decodedHeight(communes[1], anPid));
    t.diagnostic(`An's camera suspended: sends ${JSON.stringify(suspended.active)} (${suspended.allowed} allowed), ` +
      `top layer stuck at ${stopped.bytes.f ?? 0} bytes; Bình decodes it ${smallHeight} px high`);
    // An's camera off and on again while suspended: the page keeps what the SFU said, so the
    // lowest layer flows again and the top one stays off.
    await communes[0].getByRole('button', { name: 'Camera đang bật' }).click();
    await communes[0].getByRole('button', { name: 'Camera đang tắt' }).click();
    const kept = await waitFor("An's camera back, its top layer still off", 10_000, async () => {
      const first = await cameraSent(communes[0]);
      await sleep(2000);
      const then = await cameraSent(communes[0]);
      const flowing = (then.bytes.q ?? 0) > (first.bytes.q ?? 0);
      return flowing && then.active.f === false && then.bytes.f === first.bytes.f ? then : null;
    }, 0);
    t.diagnostic(`after camera off and on: sends ${JSON.stringify(kept.active)}`);

    // Silence suppression: the SFU's answer asked for Opus DTX (usedtx=1), so with its
    // microphone off Bình's page sends a few packets a second (4.75 measured), not 50.
    await communes[1].getByRole('button', { name: 'Micrô đang bật' }).click();
    await sleep(1000);
    const mutedFrom = await audioPacketsSent(communes[1]);
    await sleep(4000);
    const mutedRate = ((await audioPacketsSent(communes[1])) - mutedFrom) / 4;
    await communes[1].getByRole('button', { name: 'Micrô đang tắt' }).click();
    t.diagnostic(`Bình's microphone off: ${mutedRate} audio packets a second`);
    assert.ok(mutedRate > 0 && mutedRate <= 10, `muted, Bình sends ${mutedRate} audio packets a second`);

    // Xã An asks for the floor from its page, with the keyboard alone; the chair grants it
    // from the queue.
    let tabs = 0;
    while ((await communes[0].evaluate(() => document.activeElement?.id)) !== 'floor-button') {
      assert.ok(++tabs < 60, 'the floor button is reachable with Tab');
      await communes[0].keyboard.press('Tab');
    }
    await communes[0].keyboard.press('Enter');
    const request = chair.locator(`#floor-queue li[data-site="${siteOf('X001')}"]`);
    await request.waitFor({ timeout: 10_000 });
    await communes[0].getByRole('button', { name: 'Rút yêu cầu phát biểu' }).waitFor({ timeout: 5_000 });
    await chair.screenshot({ path: path.join(SHOTS, 'chair.png') });
    await request.getByRole('button', { name: 'Cho Xã An phát biểu' }).click();
    await communes[0].getByRole('button', { name: 'Bạn đang được phát biểu' }).waitFor({ timeout: 10_000 });

    // Everyone hears Xã An, and no other commune: the chair hears An only; the others the
    // chair and An.
    const heardWithFloor = await waitFor('Xã An heard everywhere, Bình and Chi nowhere', 30_000, async () => {
      const heard = await Promise.all(all.map((page) => heardOver(page, 1500)));
      const expected = [
        [anPid],
        [chairPid],
        [chairPid, anPid].sort((a, b) => a - b),
        [chairPid, anPid].sort((a, b) => a - b),
      ];
      return heard.every((h, i) => JSON.stringify(h) === JSON.stringify(expected[i])) ? heard : null;
    }, 0);
    t.diagnostic(`heard with An holding the floor: ${JSON.stringify(heardWithFloor)}`);
    // Now on every other page's stage, An's top layer is wanted at once: its page turns it back
    // on, and Bình's page decodes An's camera bigger than in the gallery.
    const resumed = await waitFor("An's top camera layer back on", 30_000, async () => {
      const now = await cameraSent(communes[0]);
      return now.active.f ? now : null;
    });
    const largeHeight = await waitFor("An's camera decoded larger on Bình's page", 30_000, async () => {
      const h = await decodedHeight(communes[1], anPid);
      return h > smallHeight ? h : null;
    }, 500);
    t.diagnostic(`An shown large: sends ${JSON.stringify(resumed.active)}; Bình decodes it ${largeHeight} px high`);
    const tile = communes[1].locator(`[data-participant-id="${anPid}"]`);
    assert.ok((await tile.getAttribute('class')).includes('main'), 'the floor holder is shown large');
    assert.ok((await tile.locator('.badge-floor').count()) === 1, 'and marked as holding the floor');

    // The chair takes the floor back: An is heard no more.
    await chair.getByRole('button', { name: 'Thu hồi quyền phát biểu' }).click();
    await waitFor('only the chair heard again', 30_000, async () => {
      const heard = await Promise.all(communes.slice(1).map((page) => heardOver(page, 1500)));
      return heard.every((h) => h.length === 1 && h[0] === chairPid);
    }, 0);

    // Xã An turns its camera off: the chair no longer gets its picture; on again, it does.
    await communes[0].getByRole('button', { name: 'Camera đang bật' }).click();
    await waitFor("An's camera gone from the chair's page", 20_000, async () =>
      !(await seenOver(chair, 1500)).includes(anPid), 0);
    await communes[0].getByRole('button', { name: 'Camera đang tắt' }).click();
    await waitFor("An's camera back on the chair's page", 20_000, async () =>
      (await seenOver(chair, 1500)).includes(anPid), 0);

    // Xã Bình shares a document: a picture file chosen through its page. The others decode it.
    const document = await chair.screenshot({ type: 'png' });
    await communes[1].locator('#document-file').setInputFiles({ name: 'bao-cao.png', mimeType: 'image/png', buffer: document });
    await communes[1].getByRole('button', { name: 'Dừng chia sẻ' }).waitFor({ timeout: 10_000 });
    for (const [i, page] of all.entries()) {
      if (page === communes[1]) continue;
      const first = await waitFor(`the document decoded on page ${i}`, 30_000, () => contentStats(page));
      const later = await waitFor(`the document keeps coming on page ${i}`, 15_000, async () => {
        const now = await contentStats(page);
        return now && now.frames > first.frames + 3 ? now : null;
      }, 500);
      assert.equal(later.owner, binhPid);
      assert.ok(later.width >= 640, `decoded at ${later.width}x${later.height}`);
      t.diagnostic(`page ${i} decodes Bình's document: ${later.frames} frames at ${later.width}x${later.height}`);
    }
    assert.equal(await communes[0].locator('#presenter-note').textContent(), 'Xã Bình đang trình bày');
    await communes[0].screenshot({ path: path.join(SHOTS, 'meeting.png') });
    await chair.screenshot({ path: path.join(SHOTS, 'chair-presentation.png') });

    // Xã Chi's link is thin: in low-bandwidth mode its page shows, and gets, the chair's camera
    // only (and the presentation).
    // Before: the chair's camera and others'. (With the presentation added, the bandwidth
    // allocator may pause gallery tiles for a while, so not necessarily all of them.)
    const before = await waitFor('the chair and another camera decoded before', 20_000, async () => {
      const seen = await seenOver(communes[2], 1500);
      return seen.includes(chairPid) && seen.length >= 2 ? seen : null;
    }, 0);
    t.diagnostic(`before low-bandwidth mode, cameras of ${JSON.stringify(before)}`);
    await communes[2].getByRole('button', { name: 'Tiết kiệm băng thông' }).click();
    const thin = await waitFor('only the chair decoded in low-bandwidth mode', 20_000, async () => {
      const seen = await seenOver(communes[2], 1500);
      return JSON.stringify(seen) === JSON.stringify([chairPid]) ? seen : null;
    }, 0);
    t.diagnostic(`low-bandwidth page decodes cameras of ${JSON.stringify(thin)}`);
    assert.ok((await contentStats(communes[2])) !== null, 'and still the presentation');

    // Its connection is restarted (as the page does by itself when ICE breaks off): new ICE
    // credentials from the SFU, and the chair's voice still arrives.
    const ufrag = await remoteUfrag(communes[2]);
    await communes[2].evaluate(() => window.bridge.restartIce());
    await waitFor('new ICE credentials after the restart', 15_000, async () => {
      const now = await remoteUfrag(communes[2]);
      return now && now !== ufrag;
    });
    await waitFor('the chair heard after the ICE restart', 20_000, async () =>
      (await heardOver(communes[2], 1500)).includes(chairPid), 0);

    // Bình stops: the presentation leaves every page.
    await communes[1].getByRole('button', { name: 'Dừng chia sẻ' }).click();
    await waitFor('the presentation gone from the chair', 15_000, async () => (await chair.locator('.tile.content').count()) === 0);

    // Bình presents a two-page PDF and turns to its second page: the chair sees the page change.
    await communes[1].locator('#document-file').setInputFiles({
      name: 'cong-van.pdf', mimeType: 'application/pdf', buffer: pdfOf(['TRANG 1  ......', '..........  TRANG 2']),
    });
    await communes[1].getByText('Trang 1/2').waitFor({ timeout: 20_000 });
    const firstPage = await waitFor('the PDF page decoded by the chair', 30_000, async () => {
      const p = await contentPicture(chair);
      return p && p.reduce((sum, v) => sum + v, 0) > 10 ? p : null;
    }, 500);
    await communes[1].getByRole('button', { name: 'Trang sau' }).click();
    await communes[1].getByText('Trang 2/2').waitFor({ timeout: 10_000 });
    const secondPage = await waitFor("the chair's picture of the PDF changes with the page", 20_000, async () => {
      const now = await contentPicture(chair);
      const moved = now && now.reduce((sum, v, i) => sum + Math.abs(v - firstPage[i]), 0);
      const inked = now && now.reduce((sum, v) => sum + v, 0);
      return moved > 20 && inked > 10 ? now : null;
    }, 500);
    t.diagnostic(`PDF page 1 vs 2 dark columns: ${firstPage.join('')} / ${secondPage.join('')}`);
    await communes[1].screenshot({ path: path.join(SHOTS, 'presenting-pdf.png') });
    await communes[1].getByRole('button', { name: 'Dừng chia sẻ' }).click();
    await waitFor('the PDF gone from the chair', 15_000, async () => (await chair.locator('.tile.content').count()) === 0);

    // The chair ends the meeting: every page is back home, told so.
    chair.on('dialog', (d) => void d.accept());
    await chair.getByRole('button', { name: 'Kết thúc cuộc họp' }).click();
    for (const page of all) {
      await waitFor('back on the home page', 15_000, async () =>
        (await page.locator('#home-page').isVisible()) && (await page.locator('#status').textContent()) === 'Cuộc họp đã kết thúc.');
    }
    await communes[2].screenshot({ path: path.join(SHOTS, 'home.png') });
    const ended = (await api('GET', `/api/meetings/${meeting.id}`, admin)).json();
    assert.equal(ended.state, 'ended');
    failed = false;
  } finally {
    if (failed) {
      group.dumpLogs(40);
      for (const [who, lines] of consoleLogs) console.error(`---- console of ${who} ----\n${lines.slice(-30).join('\n')}`);
    }
    await browser?.close().catch(() => {});
    await group.stop();
    if (!failed && !process.env.E2E_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
  }
});
