#!/usr/bin/env python3
"""Writes bridge-dashboard.json, the Grafana dashboard of a meeting's sites.

  python3 deploy/grafana/make-dashboard.py           # write it
  python3 deploy/grafana/make-dashboard.py --check   # the committed file is what this writes,
                                                     # and promtool accepts every query
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
M='meeting="$meeting"'
def ts(title, expr, legend, unit, x, y, w=12, h=8, kind="timeseries", desc=""):
    p = {
        "type": kind, "title": title, "description": desc,
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": legend,
                     "datasource": {"type": "prometheus", "uid": "${datasource}"}}],
    }
    if kind == "timeseries":
        p["options"] = {"legend": {"displayMode": "table", "placement": "right",
                                   "calcs": ["last", "max"], "sortBy": "Last", "sortDesc": True}}
    return p
loss = lambda counter: (f'sum by (site) (rate({counter}{{{M}}}[30s])) / '
                        f'sum by (site) (rate(bridge_site_expected_packets_total{{{M}}}[30s]))')
panels = [
    ts("Sites in the meeting", f'count(bridge_site_endpoints{{{M}}})', "", "none", 0, 0, 6, 4, "stat"),
    ts("Invited sites not in", f'count(bridge_site_presence{{{M}}} < 2) or vector(0)', "", "none", 6, 0, 6, 4, "stat",
       "Invited sites whose terminal is offline, or connected but not in the meeting"),
    ts("Worst loss (before retransmission)", f'max({loss("bridge_site_missing_packets_total")})',
       "", "percentunit", 12, 0, 6, 4, "stat"),
    ts("Room terminals over 90 % CPU", 'count(bridge_terminal_cpu_ratio > 0.9) or vector(0)', "", "none", 18, 0, 6, 4, "stat"),
    ts("Loss from each site, before retransmission", loss("bridge_site_missing_packets_total"),
       "site {{site}}", "percentunit", 0, 4),
    ts("Loss from each site, after retransmission", loss("bridge_site_lost_packets_total"),
       "site {{site}}", "percentunit", 12, 4),
    ts("Round-trip time", f'bridge_site_rtt_seconds{{{M}}}', "site {{site}}", "s", 0, 12),
    ts("Jitter of what each site sends", f'bridge_site_jitter_seconds{{{M}}}', "site {{site}} {{kind}}", "s", 12, 12),
    ts("Video frame rate arriving (lowest layer)",
       f'sum by (site) (rate(bridge_site_video_frames_total{{{M},layer="0"}}[15s]))', "site {{site}}", "fps", 0, 20),
    ts("Video freezes per minute",
       f'sum by (site) (increase(bridge_site_video_freezes_total{{{M}}}[1m]))', "site {{site}}", "none", 12, 20),
    ts("Bitrate from each site",
       f'8 * sum by (site) (rate(bridge_site_received_bytes_total{{{M}}}[15s]))', "site {{site}}", "bps", 0, 28),
    ts("Bitrate to each site",
       f'8 * sum by (site) (rate(bridge_site_sent_bytes_total{{{M}}}[15s]))', "site {{site}}", "bps", 12, 28),
    ts("Bandwidth estimate towards each site",
       f'bridge_site_bandwidth_estimate_bits_per_second{{{M}}}', "site {{site}}", "bps", 0, 36),
    ts("Loss each site's receiver reports",
       f'bridge_site_receiver_loss_ratio{{{M}}}', "site {{site}}", "percentunit", 12, 36),
    ts("Retransmission requests",
       f'sum by (site, direction) (rate(bridge_site_nacks_total{{{M}}}[1m]))',
       "site {{site}} {{direction}}", "reqps", 0, 44),
    ts("Keyframe requests",
       f'sum by (site, direction) (rate(bridge_site_keyframe_requests_total{{{M}}}[1m]))',
       "site {{site}} {{direction}}", "reqps", 12, 44),
    ts("Room terminals: CPU", 'bridge_terminal_cpu_ratio', "site {{site}}", "percentunit", 0, 52),
    ts("Room terminals: what they encode", 'bridge_terminal_sent_bits_per_second', "site {{site}} layer {{layer}}", "bps", 12, 52),
    ts("Room terminals: uplink estimate", 'bridge_terminal_uplink_estimate_bits_per_second', "site {{site}}", "bps", 0, 60),
    ts("Room terminals: camera captured", 'bridge_terminal_camera', "site {{site}}", "bool", 12, 60),
]
for i, p in enumerate(panels, 1):
    p["id"] = i
dash = {
    "title": "Meeting-room bridge: sites of a meeting",
    "uid": "bridge-sites",
    "description": "Stream quality per site of one meeting, as the bridge's SFU measures it, and the room terminals' health. Labels: meeting and site ids (GET /api/sites).",
    "tags": ["bridge"],
    "timezone": "browser",
    "schemaVersion": 38,
    "version": 1,
    "refresh": "5s",
    "time": {"from": "now-30m", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"},
        {"name": "meeting", "type": "query", "label": "Meeting",
         "datasource": {"type": "prometheus", "uid": "${datasource}"},
         "query": {"query": "label_values(bridge_site_endpoints, meeting)", "refId": "meeting"},
         "definition": "label_values(bridge_site_endpoints, meeting)", "refresh": 2, "sort": 3},
    ]},
    "annotations": {"list": []},
    "panels": panels,
}
text = json.dumps(dash, ensure_ascii=False, indent=2) + "\n"
path = os.path.join(HERE, "bridge-dashboard.json")
if "--check" not in sys.argv:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    sys.exit(0)

with open(path, encoding="utf-8") as f:
    if f.read() != text:
        sys.exit(f"{path} is not what make-dashboard.py writes: run it and commit the result")
# Every query must parse: promtool checks them as recording rules (the meeting variable set).
rules = {"groups": [{"name": "dashboard", "rules": [
    {"record": f"dashboard:panel_{p['id']}", "expr": t["expr"].replace("$meeting", "1")}
    for p in panels for t in p["targets"]]}]}
with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
    json.dump(rules, f)  # JSON is YAML
try:
    subprocess.run(["promtool", "check", "rules", f.name], check=True, stdout=subprocess.DEVNULL)
finally:
    os.unlink(f.name)
print(f"{len(panels)} panels, every query accepted by promtool")
