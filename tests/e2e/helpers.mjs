// What the browser end-to-end tests share: Chromium's flags (shared/TESTING.md), waiting,
// free ports, HTTPS to the bridge's self-signed certificate, and in-page probes of WebRTC stats.

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// ---- where things are ----------------------------------------------------------------------

/** The repository. */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
/** The binaries under test (BRIDGE_BIN and ROOM_AGENT_BIN override them), the built web client. */
export const BRIDGE_BIN = process.env.BRIDGE_BIN || path.join(REPO, 'target', 'debug', 'bridge');
export const AGENT_BIN = process.env.ROOM_AGENT_BIN || path.join(REPO, 'target', 'debug', 'room-agent');
export const WEB_ROOT = path.join(REPO, 'web-client', 'dist');

// The flags from shared/TESTING.md (Playwright gives every launch a fresh --user-data-dir).
export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-sync',
  '--disable-background-networking',
  '--disable-component-update',
  '--use-fake-ui-for-media-stream',
  '--use-fake-device-for-media-stream=fps=30',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1',
  '--autoplay-policy=no-user-gesture-required',
];

// ---- small helpers ---------------------------------------------------------------------

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `interval` ms until it returns a truthy value or `timeout` ms pass. */
export async function waitFor(what, timeout, check, interval = 200) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out after ${timeout} ms waiting for ${what}; last: ${detail}`);
    }
    await sleep(interval);
  }
}

export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.once('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

/** GET over HTTPS, accepting the bridge's self-signed certificate. */
export function httpsGet(url) {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { rejectUnauthorized: false, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
  });
}

export function tail(file, lines = 60) {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(cannot read ${file}: ${err.message})`;
  }
}

export function metricValue(text, name) {
  const re = new RegExp(`^${name}(?:\\{[^}]*\\})?\\s+(\\S+)`, 'm');
  const m = re.exec(text);
  return m ? Number(m[1]) : null;
}

/** Sends `count` datagrams of random bytes and sizes to the media port. */
export async function sendGarbage(port, count) {
  const sock = dgram.createSocket('udp4');
  const sizes = [1, 2, 12, 20, 28, 100, 576, 1200, 1400, 1472];
  try {
    for (let i = 0; i < count; i++) {
      const size = i < sizes.length ? sizes[i] : 1 + Math.floor(Math.random() * 1400);
      const buf = randomBytes(size);
      await new Promise((resolve, reject) =>
        sock.send(buf, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
      );
      if (i % 20 === 19) await sleep(5); // do not overflow the loopback socket buffer
    }
  } finally {
    sock.close();
  }
}

// ---- in-page probes (run inside the browser) ---------------------------------------------

/** Inbound RTP stats of one page, each tagged with the participant that sends it. */
export async function inboundStats(page) {
  return page.evaluate(async () => {
    const b = window.bridge;
    if (!b || !b.pc) return [];
    const report = await b.pc.getStats();
    const out = [];
    report.forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      out.push({
        id: s.id,
        kind: s.kind,
        owner: b.trackOwner.get(s.trackIdentifier) ?? null,
        trackIdentifier: s.trackIdentifier,
        framesDecoded: s.framesDecoded ?? 0,
        framesPerSecond: s.framesPerSecond ?? 0,
        totalSamplesReceived: s.totalSamplesReceived ?? 0,
        packetsReceived: s.packetsReceived ?? 0,
        frameHeight: s.frameHeight ?? 0,
      });
    });
    return out;
  });
}

/** The heights of the simulcast layers this page sends right now (outbound-rtp), ascending. */
export async function sentLayerHeights(page) {
  return page.evaluate(async () => {
    const report = await window.bridge.pc.getStats();
    const heights = [];
    report.forEach((s) => {
      if (s.type === 'outbound-rtp' && s.kind === 'video' && s.frameHeight) heights.push(s.frameHeight);
    });
    return heights.sort((a, b) => a - b);
  });
}

export function pageState(page) {
  return page.evaluate(() => {
    const b = window.bridge;
    return {
      participantId: b?.participantId ?? null,
      participants: b ? [...b.participants] : [],
      trackOwner: b ? [...b.trackOwner] : [],
      connectionState: b?.pc?.connectionState ?? null,
      tiles: [...document.querySelectorAll('[data-participant-id]')].map((el) => ({
        id: el.getAttribute('data-participant-id'),
        name: el.querySelector('.tile-name')?.textContent ?? null,
      })),
      status: document.getElementById('status')?.textContent ?? '',
    };
  });
}

/**
 * For each owner in `owners`: did video framesDecoded and audio totalSamplesReceived rise
 * between the samples `before` and `after` (same stats object)?
 */
export function flowing(before, after, owners, { audio = true } = {}) {
  const rose = (kind, field, owner) =>
    after.some(
      (a) =>
        a.kind === kind &&
        a.owner === owner &&
        a[field] > (before.find((b) => b.id === a.id)?.[field] ?? Infinity),
    );
  const missing = [];
  for (const owner of owners) {
    if (!rose('video', 'framesDecoded', owner)) missing.push(`video from ${owner}`);
    if (audio && !rose('audio', 'totalSamplesReceived', owner)) missing.push(`audio from ${owner}`);
  }
  return missing;
}


/**
 * An HTTPS request with a JSON or text body to the bridge (self-signed certificate accepted);
 * resolves to { status, body, json() }.
 */
export function httpsRequest(method, url, { token, body, contentType = 'application/json' } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body);
    const headers = { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) };
    if (token) headers.authorization = `Bearer ${token}`;
    const req = https.request(url, { method, headers, rejectUnauthorized: false, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body: text, json: () => JSON.parse(text) }));
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(payload);
  });
}

// ---- processes ---------------------------------------------------------------------------

/**
 * Starts the bridge in `group` on free loopback ports, its data in `<dir>/data`, serving the
 * built web client, `admin`'s password `adminPassword`; waits until it answers. Resolves to
 * `{ base, httpPort, bridge, api(method, path, token, body, contentType), login(username,
 * password) }`
 * (`login` resolves to a session token).
 */
export async function startBridge(group, dir, { adminPassword, args = [], env = {} }) {
  const httpPort = await freeTcpPort();
  const mediaPort = await freeUdpPort();
  const base = `https://127.0.0.1:${httpPort}`;
  const bridge = group.launch(BRIDGE_BIN, [
    '--listen', `127.0.0.1:${httpPort}`, '--media-addr', `127.0.0.1:${mediaPort}`,
    '--data-dir', path.join(dir, 'data'), '--web-root', WEB_ROOT, ...args,
  ], 'bridge', { BRIDGE_ADMIN_PASSWORD: adminPassword, ...env });
  await waitFor('the bridge to answer /healthz', 60_000, async () => {
    if (bridge.exit) throw new Error(`bridge exited: ${JSON.stringify(bridge.exit)}`);
    return (await httpsGet(`${base}/healthz`)).status === 200;
  });
  const api = (method, p, token, body, contentType) => httpsRequest(method, `${base}${p}`, { token, body, contentType });
  const login = async (username, password) => {
    const r = await api('POST', '/api/login', null, { username, password });
    if (r.status !== 200) throw new Error(`login of ${username}: ${r.status} ${r.body}`);
    return r.json().token;
  };
  return { base, httpPort, bridge, api, login };
}

/**
 * The child processes of one test, each logging to `<dir>/<name>.log`. `launch` returns
 * `{ proc, exit, exited }` (`exit` stays null while it runs); `stop` ends them all (SIGTERM,
 * then SIGKILL after 3 s); none outlives the test runner.
 */
export function processGroup(dir) {
  const logs = [];
  const all = [];
  const killAll = () => {
    for (const p of all) if (p.exit === null) p.proc.kill('SIGKILL');
  };
  process.once('exit', killAll);
  return {
    logs,
    launch(bin, args, name, env = {}) {
      const file = `${dir}/${name}.log`;
      logs.push(file);
      const fd = fs.openSync(file, 'w');
      const proc = spawn(bin, args, { stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
      fs.closeSync(fd);
      const state = { proc, exit: null };
      state.exited = new Promise((resolve) =>
        proc.on('exit', (code, signal) => resolve((state.exit = { code, signal }))),
      );
      all.push(state);
      return state;
    },
    /** Prints the last lines of every log (after a failure). */
    dumpLogs(lines = 30) {
      for (const file of logs) console.error(`---- ${file} ----\n${tail(file, lines)}`);
    },
    async stop() {
      for (const p of all) {
        if (p.exit === null) {
          p.proc.kill('SIGTERM');
          await Promise.race([p.exited, sleep(3_000)]);
        }
      }
      killAll();
      process.removeListener('exit', killAll);
    },
  };
}

/**
 * Runs a command to its end; rejects with its output when it fails. For `ip` and `tc`.
 */
export function run(cmd, args) {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

/**
 * Issues site `siteId`'s terminal credential (as `adminToken`) and writes a headless test-source
 * room-agent configuration for it in `dir`; returns the configuration's path. `capture` and
 * `video` are extra lines of those sections.
 */
export async function agentConfig({ base, adminToken, siteId, terminal, dir, capture = [], video = [] }) {
  const issued = await httpsRequest('POST', `${base}/api/sites/${siteId}/credential`, { token: adminToken, body: {} });
  if (issued.status !== 200) throw new Error(`credential for site ${siteId}: ${issued.status} ${issued.body}`);
  const secret = `${dir}/${terminal}.secret`;
  fs.writeFileSync(secret, issued.json().secret, { mode: 0o600 });
  const config = `${dir}/${terminal}.toml`;
  fs.writeFileSync(config, [
    'display = "none"',
    '[server]',
    `url = "${base}"`,
    `terminal_id = "${terminal}"`,
    `secret_file = "${secret}"`,
    `pinned_certificate = "${dir}/data/tls-cert.pem"`,
    'schedule_poll_secs = 1',
    '[capture]',
    'camera = "test"',
    'microphone = "test"',
    'fps = 15',
    ...capture,
    '[video]',
    'encoder = "software"',
    ...video,
  ].join('\n'));
  return config;
}
