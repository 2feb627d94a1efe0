#!/usr/bin/env python3
"""etcd alongside, for the side-by-side figures of docs/PERFORMANCE.md: a 3-node etcd cluster on
loopback (Debian's etcd-server, fsync on as it is by default) in a temporary directory, loaded
through its JSON gateway (POST /v3/kv/put) by wrk with N connections for S seconds. Reports
writes/s, p50 and p99, and CPU µs per write of the three servers (/proc) and of wrk."""

import json
import os
import random
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

from costmodel import cpu_ticks, stop_processes, CLK_TCK

WRK_SCRIPT = r"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
local value = string.rep("a", 100)
local function b64(s)
  local chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  return ((s:gsub('.', function(x)
    local r, b = '', x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and '1' or '0') end
    return r
  end) .. '0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
    if (#x < 6) then return '' end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == '1' and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ '', '==', '=' })[#s % 3 + 1])
end
local encoded_value = b64(value)
request = function()
  counter = counter + 1
  local key = b64("bench-" .. math.random(0, 9999))
  return wrk.format(nil, "/v3/kv/put", nil, '{"key":"' .. key .. '","value":"' .. encoded_value .. '"}')
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {\"requests\":%d,\"errors\":%d,\"p50\":%d,\"p99\":%d,\"seconds\":%f}\n",
    summary.requests, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), summary.duration / 1e6))
end
"""


class Etcd:
    def __init__(self, workdir):
        self.dir = workdir
        base = 30000 + random.randrange(4000) * 2
        self.peers = [base + 2 * i for i in range(3)]
        self.clients = [base + 2 * i + 1 for i in range(3)]
        initial = ",".join(f"e{i}=http://127.0.0.1:{p}" for i, p in enumerate(self.peers))
        self.procs = []
        for i in range(3):
            log = open(os.path.join(workdir, f"etcd-{i}.log"), "w")
            self.procs.append(subprocess.Popen([
                "etcd", "--name", f"e{i}", "--data-dir", os.path.join(workdir, f"e{i}"),
                "--listen-peer-urls", f"http://127.0.0.1:{self.peers[i]}",
                "--initial-advertise-peer-urls", f"http://127.0.0.1:{self.peers[i]}",
                "--listen-client-urls", f"http://127.0.0.1:{self.clients[i]}",
                "--advertise-client-urls", f"http://127.0.0.1:{self.clients[i]}",
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", os.path.basename(workdir)], stdout=log, stderr=log))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{self.clients[0]}/v3/kv/put",
                                                 data=b'{"key":"d2FybQ==","value":"dXA="}', method="POST")
                urllib.request.urlopen(request, timeout=2).read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("etcd did not start serving")

    def stop(self):
        stop_processes(self.procs)


def measure(clients, seconds):
    """A fresh 3-node etcd, a warm-up, then one measured wrk run against node 0 (as a client that
    knows one endpoint: a follower forwards to the leader)."""
    if not shutil.which("etcd") or not shutil.which("wrk"):
        raise SystemExit("etcd comparison needs Debian's etcd-server and wrk: apt-get install etcd-server wrk")
    workdir = tempfile.mkdtemp(prefix="bulwark-etcd-")
    script = os.path.join(workdir, "put.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    etcd = Etcd(workdir)
    try:
        url = f"http://127.0.0.1:{etcd.clients[0]}"
        threads = str(min(2, clients))

        def wrk(duration):
            return subprocess.run(["wrk", "-t", threads, "-c", str(clients), "-d", f"{duration}s", "-s", script, url],
                                  capture_output=True, text=True, timeout=duration + 60)
        wrk(2)
        before = {p.pid: cpu_ticks(p.pid) for p in etcd.procs}
        started = os.times()
        out = wrk(seconds)
        ended = os.times()
        after = {p.pid: cpu_ticks(p.pid) for p in etcd.procs}
        found = re.search(r"^JSON (.*)$", out.stdout, re.M)
        if out.returncode != 0 or not found:
            raise SystemExit(f"wrk failed: {out.stderr.strip() or out.stdout.strip()}")
        result = json.loads(found.group(1))
        done = max(1, result["requests"])
        servers = sum(after[pid] - before[pid] for pid in after) / CLK_TCK
        generator = (ended.children_user - started.children_user) + (ended.children_system - started.children_system)
        return {"clients": clients, "throughputPerSecond": result["requests"] / result["seconds"],
                "errors": result["errors"], "p50Ms": result["p50"] / 1000, "p99Ms": result["p99"] / 1000,
                "serverCpuUsPerWrite": servers * 1e6 / done, "generatorCpuUsPerWrite": generator * 1e6 / done}
    finally:
        etcd.stop()
        shutil.rmtree(workdir, ignore_errors=True)
