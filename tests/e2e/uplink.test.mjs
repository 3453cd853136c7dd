// A room agent behind a thin link: its encoders follow what the link carries.
//
// The agent runs in a network namespace of its own, joined to the bridge by a veth pair; a
// token-bucket filter (tc tbf) on the agent's side narrows its uplink. The agent's bandwidth
// estimate (str0m's, from the SFU's transport-wide feedback) falls, its health reports show the
// encoders' targets and output falling below the link's rate while its video keeps arriving at
// the SFU; when the filter goes, the estimate climbs back. Nothing here is simulated: real
// ICE, DTLS and SRTP through the kernel's queue.
//
// Needs root (ip netns, tc), as the README's test command does.
//
//   npm run build && cargo build -p signaling -p room-agent --bin bridge --bin room-agent && npm run test:e2e

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  AGENT_BIN,
  agentConfig,
  BRIDGE_BIN,
  freeTcpPort,
  freeUdpPort,
  httpsGet,
  httpsRequest,
  processGroup,
  run,
  sleep,
  waitFor,
} from './helpers.mjs';

const ADMIN_PASSWORD = 'e2e-admin-password';
// The link's rate while narrowed, and what the agent's layers want (kb/s).
const LINK_KBPS = 300;
const LAYERS = [{ height: 180, kbps: 250 }, { height: 360, kbps: 700 }];

/** A network namespace joined to this one by a veth pair; `close` removes both. */
async function namespace() {
  const id = process.pid % 100_000;
  const ns = `bridge-up-${id}`;
  const hostIf = `bup${id}h`;
  const nsIf = `bup${id}a`;
  const net = `10.231.${id % 250}`;
  const inNs = (...args) => run('ip', ['netns', 'exec', ns, ...args]);
  await run('ip', ['netns', 'add', ns]);
  const close = async () => {
    await run('ip', ['netns', 'del', ns]).catch(() => {});
    await run('ip', ['link', 'del', hostIf]).catch(() => {});
  };
  try {
    await run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    await run('ip', ['link', 'set', nsIf, 'netns', ns]);
    await run('ip', ['addr', 'add', `${net}.1/24`, 'dev', hostIf]);
    await run('ip', ['link', 'set', hostIf, 'up']);
    await inNs('ip', 'addr', 'add', `${net}.2/24`, 'dev', nsIf);
    await inNs('ip', 'link', 'set', nsIf, 'up');
    await inNs('ip', 'link', 'set', 'lo', 'up');
  } catch (err) {
    await close();
    throw err;
  }
  return {
    ns,
    hostIp: `${net}.1`,
    /** Narrows what leaves the namespace to `kbps` (a queue of 100 ms: beyond it, drops). */
    narrow: (kbps) =>
      inNs('tc', 'qdisc', 'replace', 'dev', nsIf, 'root', 'tbf', 'rate', `${kbps}kbit`,
        'burst', '6kb', 'latency', '100ms'),
    widen: () => inNs('tc', 'qdisc', 'del', 'dev', nsIf, 'root'),
    close,
  };
}

test('a room agent behind a thin link lowers its bitrate to fit, and raises it again', { timeout: 240_000 }, async (t) => {
  for (const bin of [BRIDGE_BIN, AGENT_BIN]) assert.ok(fs.existsSync(bin), `${bin} is missing: build it`);
  assert.equal(process.getuid?.(), 0, 'this test needs root: it makes a network namespace (ip netns) and shapes it (tc)');

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bridge-uplink-'));
  const group = processGroup(tmp);
  const link = await namespace();
  const httpPort = await freeTcpPort();
  const mediaPort = await freeUdpPort();
  const base = `https://${link.hostIp}:${httpPort}`;
  let failed = true;
  try {
    const bridge = group.launch(BRIDGE_BIN, [
      '--listen', `${link.hostIp}:${httpPort}`, '--media-addr', `${link.hostIp}:${mediaPort}`,
      '--data-dir', path.join(tmp, 'data'),
    ], 'bridge', { BRIDGE_ADMIN_PASSWORD: ADMIN_PASSWORD });
    await waitFor('the bridge to answer /healthz', 60_000, async () => {
      if (bridge.exit) throw new Error(`bridge exited: ${JSON.stringify(bridge.exit)}`);
      return (await httpsGet(`${base}/healthz`)).status === 200;
    });
    const api = (method, p, token, body, contentType) =>
      httpsRequest(method, `${base}${p}`, { token, body, contentType });
    const login = await api('POST', '/api/login', null, { username: 'admin', password: ADMIN_PASSWORD });
    assert.equal(login.status, 200, login.body);
    const admin = login.json().token;
    const csv = [
      'code,name,level,parent_code,terminal_id',
      'T01,Tỉnh,province,,rt-t01',
      'H01,Huyện Một,district,T01,rt-h01',
      'X001,Xã Một,commune,H01,rt-x001',
      'X002,Xã Hai,commune,H01,rt-x002',
    ].join('\n');
    const imported = await api('POST', '/api/sites/import', admin, csv, 'text/csv');
    assert.equal(imported.status, 200, imported.body);
    const site = (await api('GET', '/api/sites', admin)).json().find((s) => s.code === 'X001').id;
    const config = await agentConfig({
      base, adminToken: admin, siteId: site, terminal: 'rt-x001', dir: tmp,
      // Moving rings: the encoders spend what they are allowed, so what they send shows it.
      capture: ['test_pattern = "zone-plate"'],
      video: [`layers = [${LAYERS.map((l) => `{ height = ${l.height}, kbps = ${l.kbps} }`).join(', ')}]`],
    });
    const agent = group.launch('ip', ['netns', 'exec', link.ns, AGENT_BIN, '--config', config], 'agent', {
      RUST_LOG: process.env.AGENT_LOG || 'info',
    });
    // A second room, on the open side, shows Xã Một full screen: someone wants its top layer
    // (the SFU suspends layers nobody shows).
    const siteTwo = (await api('GET', '/api/sites', admin)).json().find((s) => s.code === 'X002').id;
    const viewerConfig = await agentConfig({ base, adminToken: admin, siteId: siteTwo, terminal: 'rt-x002', dir: tmp });
    const viewer = group.launch(AGENT_BIN, ['--config', viewerConfig], 'viewer', {
      RUST_LOG: process.env.AGENT_LOG || 'info',
    });

    const at = (s) => new Date(Date.now() + s * 1000).toISOString();
    const created = await api('POST', '/api/meetings', admin, {
      title: 'Họp qua đường truyền hẹp', starts_at: at(600), ends_at: at(4200), invite: { kind: 'all' }, mode: 'open',
    });
    assert.equal(created.status, 201, created.body);
    const meeting = created.json().id;

    // Each health report (every 5 s): what the encoders are asked for and send, in total.
    const reports = [];
    const report = async () => {
      if (agent.exit) throw new Error(`the agent exited: ${JSON.stringify(agent.exit)}`);
      const r = await api('GET', `/api/sites/${site}/health`, admin);
      if (r.status !== 200) return null;
      const h = r.json().report;
      if (h.meeting !== meeting || h.layers.length !== LAYERS.length) return null;
      const sum = (f) => h.layers.reduce((a, l) => a + (l[f] ?? 0), 0);
      const seen = { sent: Math.round(sum('kbps')), target: Math.round(sum('target_kbps')), uplink: Math.round(h.uplink_kbps ?? 0) };
      const last = reports[reports.length - 1];
      if (!last || last.sent !== seen.sent || last.uplink !== seen.uplink) {
        reports.push(seen);
        t.diagnostic(`health: ${JSON.stringify(seen)}`);
      }
      return seen;
    };
    const videoArrives = async () => {
      const rc = (await api('GET', `/api/meetings/${meeting}/roll-call`, admin)).json();
      const mine = rc.find((e) => e.site === site);
      if (mine?.presence === 'joined' && mine.video_layers >= 1) return true;
      throw new Error(`roll call: ${JSON.stringify(mine)}; health: ${JSON.stringify(await report())}`);
    };

    // Wide open: the estimate climbs, the encoders send well above the narrowed rate.
    await waitFor('the agent in the meeting, its video arriving', 60_000, videoArrives, 500);
    const open = await waitFor(`the agent sending over ${LINK_KBPS * 1.5} kb/s on the open link`, 60_000, async () => {
      const h = await report();
      return h && h.sent > LINK_KBPS * 1.5 ? h : null;
    }, 1000);

    // Narrowed: within 40 s, targets and output fit under the link; video still arrives.
    await link.narrow(LINK_KBPS);
    const narrowed = Date.now();
    const fitted = await waitFor(`the encoders under ${LINK_KBPS} kb/s`, 40_000, async () => {
      const h = await report();
      return h && h.target < LINK_KBPS && h.sent < LINK_KBPS && h.uplink < LINK_KBPS * 1.2 ? h : null;
    }, 1000);
    t.diagnostic(`fitted ${Math.round((Date.now() - narrowed) / 1000)} s after narrowing: ${JSON.stringify(fitted)}`);
    // It stays there (a later report too), and the SFU still receives its video.
    await sleep(6_000);
    const later = await report();
    assert.ok(later.sent < LINK_KBPS * 1.1, `still under the link later: ${JSON.stringify(later)}`);
    await waitFor('video still arriving through the narrow link', 15_000, videoArrives, 500);

    // Widened again: the estimate climbs back (the agent keeps probing for what it wants).
    await link.widen();
    await waitFor('the encoders back above the narrowed rate', 60_000, async () => {
      const h = await report();
      return h && h.sent > LINK_KBPS * 1.3 && h.target > LINK_KBPS * 1.3 ? h : null;
    }, 1000);
    assert.ok(open.sent > fitted.sent * 1.5, `open ${open.sent} kb/s vs narrowed ${fitted.sent} kb/s`);

    // The viewer leaves: nobody shows Xã Một any more, so the SFU asks it for its lowest layer
    // only (after its 5 s hold); the agent pauses the upper one, on the open link.
    viewer.proc.kill('SIGTERM');
    const suspended = await waitFor('the upper layer paused at the SFU\'s word', 40_000, async () => {
      const r = await api('GET', `/api/sites/${site}/health`, admin);
      const h = r.status === 200 ? r.json().report : null;
      return h?.meeting === meeting && h.layers[1]?.paused && h.layers[1]?.suspended && !h.layers[0]?.suspended ? h.layers : null;
    }, 1000);
    t.diagnostic(`nobody shows it: layers ${JSON.stringify(suspended)}`);
    assert.equal(agent.exit, null, 'the agent kept running');
    failed = false;
  } finally {
    if (failed) group.dumpLogs(40);
    await group.stop();
    await link.close();
    if (!failed && !process.env.E2E_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
  }
});
