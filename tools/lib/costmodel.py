#!/usr/bin/env python3
"""The cost model of a write (docs/PERFORMANCE.md): runs a fresh 4-replica cluster of the
release binaries in BIN, loads it with `bulwark bench` at each client count, and prints CPU
microseconds per completed request by process (from /proc: every cycle the processes spent,
user and kernel) and by phase (perf samples of the same processes, each sample attributed by
the innermost frame of its stack that names a phase, scaled to the process's measured CPU).

Used by tools/bench-cost (the tables) and tools/bench-compare (the per-process figures)."""

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Phases in order of precedence: a sample belongs to the first phase any frame of its stack
# matches (so a signature check made inside the consensus step counts as a signature check, and
# the generic phases at the end take only what nothing more specific claimed). Stacks are
# unwound with DWARF, so they pass through libsodium, whose symbols are stripped. Swift symbols
# are matched mangled (module and type names appear in them as written), C and kernel symbols
# by name.
PHASES = [
    ("signature verify", r"SignatureVerifier|crypto_sign_ed25519_verify|crypto_sign_verify"),
    ("signing", r"10PrivateKeyC4sign|crypto_sign_ed25519_detached|crypto_sign_detached"),
    ("link encrypt and decrypt", r"FrameCipher|chacha20|poly1305|crypto_aead"),
    ("fsync", r"fsync|fdatasync|FullSync|9syncFileSync|sync_file_range"),
    ("WAL and block writes", r"WriteAheadLog|8BlockLog|RecordFile|ConsensusJournal|9PosixFile|RecordFraming|CRC32C"),
    ("state root and Merkle", r"AuthenticatedMap|MerkleTree|StateHashing|ProvableState"),
    ("execution", r"KeyValueState|LedgerExecution|FileKeyHistory|PolicyIndex|19BulwarkStateMachine"),
    ("hashing (block, request digests)", r"crypto_hash_sha256|6DigestV|sha256"),
    ("consensus core", r"16BulwarkConsensus"),
    ("decode", r"CanonicalReader|8decoding"),
    ("encode", r"CanonicalWriter|7encoded|6encode2to"),
    ("client library", r"13BulwarkClient|ReplyQuorum|5bench|Histogram"),
    ("shell and node glue", r"12BulwarkShell|11BulwarkNode|16BulwarkTransport|11BulwarkCore|14BulwarkStorage"),
    ("network syscalls, NIO and waiting", r"NIOPosix|NIOCore|tcp_|sock_|__sys_send|__sys_recv|epoll|ip_|skb"),
    ("scheduling and wake-ups", r"futex|schedule|swift_task|swift_job|dispatch|pthread_cond|try_to_wake_up"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in PHASES]
OTHER = "other (allocation, runtime, kernel)"


def phase_of(frames):
    for name, rule in COMPILED:
        if any(rule.search(frame) for frame in frames):
            return name
    return OTHER


def cpu_ticks(pid):
    """utime + stime of a live process, in clock ticks, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


class Cluster:
    """A fresh 4-replica cluster of BIN's binaries in a temporary directory."""

    def __init__(self, bin_dir, workdir, nodes=4, parameters=None):
        self.bin = os.path.join(bin_dir, "bulwark")
        self.dir = workdir
        self.procs = []
        port = 20000 + random.randrange(8000)
        subprocess.run([self.bin, "cluster", "init", "--nodes", str(nodes), "--host", "127.0.0.1",
                        "--base-port", str(port), "--out", self.dir, "--force"],
                       check=True, stdout=subprocess.DEVNULL)
        self.config = os.path.join(self.dir, "cluster.json")
        if parameters:
            with open(self.config) as f:
                config = json.load(f)
            config.setdefault("parameters", {}).update(parameters)
            with open(self.config, "w") as f:
                json.dump(config, f)
        for i in range(nodes):
            log = open(os.path.join(self.dir, f"node-{i}.log"), "w")
            self.procs.append(subprocess.Popen(
                [self.bin, "node", "--config", self.config, "--key", os.path.join(self.dir, f"replica-{i}.key"),
                 "--data", os.path.join(self.dir, f"data-{i}"), "--genesis"], stdout=log, stderr=log))
        key = os.path.join(self.dir, "client.key")
        subprocess.run([self.bin, "keygen", "--out", key], check=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ok = subprocess.run([self.bin, "put", "warm", "up", "--config", self.config, "--key", key,
                                 "--timeout", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if ok.returncode == 0:
                return
        self.stop()
        raise SystemExit("bench-cost: the cluster did not start serving")

    def pids(self):
        return [p.pid for p in self.procs]

    def stop(self):
        stop_processes(self.procs)


def stop_processes(procs):
    """SIGTERM to each, then SIGKILL to any still running after 5 s."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def bench(cluster, clients, seconds, reads=0, perf_file=None):
    """One `bulwark bench` run: (bench's JSON report, {process: cpu seconds}, perf file or None)."""
    before = {pid: cpu_ticks(pid) for pid in cluster.pids()}
    started = os.times()
    proc = subprocess.Popen([cluster.bin, "bench", "--config", cluster.config, "--clients", str(clients),
                             "--duration", str(seconds), "--reads", str(reads), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    perf = None
    if perf_file:
        # perf follows the threads a process has when it attaches: let the load generator
        # start its event loops first (the CPU by process still counts the whole run).
        time.sleep(0.5)
        pids = ",".join(str(p) for p in cluster.pids() + [proc.pid])
        perf = subprocess.Popen(["perf", "record", "-q", "-F", "199", "--call-graph", "dwarf,8192", "-p", pids, "-o", perf_file],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out, err = proc.communicate(timeout=seconds + 120)
    ended = os.times()  # before perf is reaped: its own CPU is not the load generator's
    after = {pid: cpu_ticks(pid) for pid in cluster.pids()}
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(timeout=60)
    if proc.returncode != 0:
        raise SystemExit(f"bench-cost: bulwark bench failed: {err.decode(errors='replace').strip()}")
    report = json.loads(out)
    cpu = {f"replica {i}": (after[pid] - before[pid]) / CLK_TCK for i, pid in enumerate(cluster.pids())}
    cpu["load generator"] = ((ended.children_user - started.children_user)
                             + (ended.children_system - started.children_system))
    return report, cpu, (perf_file if perf else None), proc.pid


def samples(perf_file, pid_names):
    """{process: {phase: samples}} from a perf file, processes named by pid."""
    script = subprocess.run(["perf", "script", "-i", perf_file, "-F", "pid,ip,sym"], capture_output=True,
                            text=True, errors="replace").stdout
    counts = {}
    for block in script.split("\n\n"):
        lines = [l.strip() for l in block.strip().splitlines() if l.strip()]
        if not lines:
            continue
        try:
            pid = int(lines[0].split()[0])
        except ValueError:
            continue
        name = pid_names.get(pid)
        if name is None:
            continue
        frames = [l.split(None, 1)[1] if " " in l else l for l in lines[1:]]
        phase = phase_of(frames)
        counts.setdefault(name, {}).setdefault(phase, 0)
        counts[name][phase] += 1
    return counts


def measure(bin_dir, clients, seconds, reads=0, perf=True, parameters=None):
    """A fresh cluster, a warm-up, then one measured run: a dict of figures."""
    workdir = tempfile.mkdtemp(prefix="bulwark-cost-")
    cluster = Cluster(bin_dir, workdir, parameters=parameters)
    try:
        bench(cluster, clients, 2, reads)  # warm-up: connections, caches, first segments
        perf_file = os.path.join(workdir, "perf.data") if perf and shutil.which("perf") else None
        report, cpu, perf_file, bench_pid = bench(cluster, clients, seconds, reads, perf_file)
        names = {pid: f"replica {i}" for i, pid in enumerate(cluster.pids())}
        names[bench_pid] = "load generator"
        phases = samples(perf_file, names) if perf_file else {}
        return {"clients": clients, "report": report, "cpu": cpu, "phases": phases}
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def per_request(figures):
    """µs of CPU per completed request: by process, and by phase over the four replicas and
    the load generator (each process's samples scaled to its measured CPU)."""
    done = max(1, figures["report"]["completed"])
    by_process = {name: seconds * 1e6 / done for name, seconds in figures["cpu"].items()}
    replicas_phase, client_phase = {}, {}
    for name, counts in figures["phases"].items():
        total = sum(counts.values())
        if total == 0:
            continue
        target = client_phase if name == "load generator" else replicas_phase
        for phase, n in counts.items():
            target[phase] = target.get(phase, 0.0) + by_process[name] * n / total
    return by_process, replicas_phase, client_phase


def table(all_figures):
    """Markdown tables: throughput and CPU per request by process, then by phase."""
    out = []
    header = "| | " + " | ".join(f"{f['clients']} client{'s' if f['clients'] != 1 else ''}" for f in all_figures) + " |"
    rule = "|---|" + "---:|" * len(all_figures)
    derived = [per_request(f) for f in all_figures]
    out += [header, rule]
    out.append("| writes/s | " + " | ".join(f"{f['report']['throughputPerSecond']:,.0f}" for f in all_figures) + " |")
    out.append("| p50 ms | " + " | ".join(f"{f['report']['latencyMs']['p50']:.1f}" for f in all_figures) + " |")
    out.append("| p99 ms | " + " | ".join(f"{f['report']['latencyMs']['p99']:.1f}" for f in all_figures) + " |")
    for name in ["replica 0", "replica 1", "replica 2", "replica 3"]:
        out.append(f"| CPU µs/request, {name} | " + " | ".join(f"{d[0].get(name, 0):,.0f}" for d in derived) + " |")
    out.append("| **CPU µs/request, 4 replicas** | " + " | ".join(
        f"**{sum(v for k, v in d[0].items() if k.startswith('replica')):,.0f}**" for d in derived) + " |")
    out.append("| **CPU µs/request, load generator** | " + " | ".join(
        f"**{d[0].get('load generator', 0):,.0f}**" for d in derived) + " |")
    if any(f["phases"] for f in all_figures):
        out += ["", "CPU µs per request by phase, the four replicas together (perf samples scaled to measured CPU):", "",
                header, rule]
        phases = [name for name, _ in PHASES] + [OTHER]
        for phase in phases:
            if any(d[1].get(phase, 0) >= 0.5 for d in derived):
                out.append(f"| {phase} | " + " | ".join(f"{d[1].get(phase, 0):,.0f}" for d in derived) + " |")
        out += ["", "CPU µs per request by phase, the load generator:", "", header, rule]
        for phase in phases:
            if any(d[2].get(phase, 0) >= 0.5 for d in derived):
                out.append(f"| {phase} | " + " | ".join(f"{d[2].get(phase, 0):,.0f}" for d in derived) + " |")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bin", help="directory holding the release bulwark binary")
    parser.add_argument("--clients", default="1,16,64", help="client counts, comma-separated (default 1,16,64)")
    parser.add_argument("--seconds", type=int, default=10, help="measured seconds per client count (default 10)")
    parser.add_argument("--reads", type=int, default=0, help="percentage of reads (default 0: writes)")
    parser.add_argument("--no-perf", action="store_true", help="CPU by process only, no perf sampling")
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args()
    if not os.access(os.path.join(args.bin, "bulwark"), os.X_OK):
        parser.error(f"no bulwark binary in {args.bin}")
    try:
        counts = [int(c) for c in args.clients.split(",")]
    except ValueError:
        parser.error("--clients takes numbers separated by commas")
    if not counts or any(c < 1 for c in counts) or args.seconds < 1 or not 0 <= args.reads <= 100:
        parser.error("client counts and seconds must be positive, --reads a percentage")
    if not args.no_perf and not shutil.which("perf"):
        print("bench-cost: perf is not installed: CPU by process only", file=sys.stderr)
    results = []
    for clients in counts:
        print(f"bench-cost: {clients} client(s), {args.seconds} s on a fresh cluster", file=sys.stderr, flush=True)
        results.append(measure(args.bin, clients, args.seconds, args.reads, perf=not args.no_perf))
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        print(table(results))


if __name__ == "__main__":
    main()
