"""Helpers for scripts/chaos: the compose cluster's containers, jobs run with
`toolfan submit`, the checks of their results, counters scraped from the
services' /metrics, and the summary. Python 3 standard library only."""

import json
import os
import random
import re
import subprocess
import threading
import time
from collections import defaultdict
from datetime import datetime

import natsprobe

ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Counters worth printing next to the re-executions: whatever re-dispatch,
# redelivery, takeover, duplicate or retry counters the services expose.
INTERESTING = re.compile(r"redispatch|net_looks|redeliver|taken_over|duplicate|retr|reconnect|deadline_miss|attempts")
COORDINATOR_PORT, WORKER_PORT = 9470, 9471


def log(msg):
    print(f"   [{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def docker(*args, timeout=30, check=True):
    """Runs `docker ARGS`; returns stdout. Every call is bounded."""
    try:
        p = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        if check:
            raise RuntimeError(f"docker {' '.join(args)}: no answer in {timeout} s")
        return ""
    if check and p.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


class Cluster:
    """The compose project's containers, found by their compose labels."""

    def __init__(self, project, nats_url, toolfan):
        self.project, self.nats_url, self.toolfan = project, nats_url, toolfan
        self.kills = defaultdict(int)  # category -> count
        self.events = []  # (time, text), for the timeline in the logs
        self.lock = threading.Lock()

    def containers(self, service):
        out = docker("ps", "-a", "--filter", f"label=com.docker.compose.project={self.project}",
                     "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Names}}")
        return sorted(out.split())

    def networks(self, name):
        """The container's networks and its aliases on each."""
        out = docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", name)
        return {net: v.get("Aliases") or [] for net, v in json.loads(out).items()}

    def note(self, text):
        with self.lock:
            self.events.append((time.time(), text))
        log(text)

    def state(self, name):
        out = docker("inspect", "-f", "{{.State.Running}} {{.RestartCount}} "
                     "{{if .State.Health}}{{.State.Health.Status}}{{end}}", name, check=False)
        parts = out.split()
        return (parts[0] == "true" if parts else False,
                int(parts[1]) if len(parts) > 1 else 0,
                parts[2] if len(parts) > 2 else "")

    def kill(self, name, category):
        docker("kill", name, check=False)
        with self.lock:
            self.kills[category] += 1
        self.note(f"killed {name}")

    def start(self, name):
        running, restarts, _ = self.state(name)
        if running:  # Docker's restart policy brought it back already
            self.note(f"{name} was restarted by Docker (restart count {restarts})")
            return
        docker("start", name, check=False)
        self.note(f"started {name} again")

    def healthy(self, names):
        return all(self.state(n)[2] == "healthy" for n in names)

    def wait_healthy(self, names, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if self.healthy(names):
                return True
            time.sleep(0.5)
        return False

    def workers(self):
        try:
            out = subprocess.run([self.toolfan, "workers", "--nats-url", self.nats_url, "--json"],
                                 capture_output=True, text=True, timeout=15).stdout
            return len(json.loads(out))
        except (subprocess.TimeoutExpired, ValueError):
            return 0

    def wait_workers(self, count, timeout):
        end, seen = time.time() + timeout, 0
        while time.time() < end:
            seen = self.workers()
            if seen >= count:
                return True
            time.sleep(1)
        log(f"only {seen} of {count} workers answer")
        return False

    def scrape(self, name, port):
        """A container's counters, summed over their labels; {} when unreachable."""
        text = docker("exec", name, "wget", "-qO-", "-T", "2", f"http://127.0.0.1:{port}/metrics",
                      timeout=5, check=False)
        values = defaultdict(float)
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name_labels, _, value = line.rpartition(" ")
            metric = name_labels.split("{", 1)[0]
            if INTERESTING.search(metric) and not metric.endswith(("_bucket", "_sum", "_count")):
                try:
                    values[metric] += float(value)
                except ValueError:
                    pass
        return values

    def save_logs(self, directory):
        os.makedirs(directory, exist_ok=True)
        logs = {}
        for service in ("coordinator", "worker", "nats1", "nats2", "nats3", "redis"):
            for name in self.containers(service):
                p = subprocess.run(["docker", "logs", "-t", name], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, timeout=60)
                logs[name] = ANSI.sub("", p.stdout)
                with open(os.path.join(directory, f"{name}.log"), "w") as f:
                    f.write(logs[name])
        with open(os.path.join(directory, "timeline.log"), "w") as f:
            for t, text in self.events:
                f.write(f"{time.strftime('%H:%M:%S', time.gmtime(t))}.{int(t % 1 * 1000):03d}Z {text}\n")
        return logs


class Counters:
    """Counters summed over process lifetimes: a container is scraped just
    before it is killed (its counters die with it) and every one at the end."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.totals = {"coordinator": defaultdict(float), "worker": defaultdict(float)}
        self.lock = threading.Lock()

    def bank(self, service, name):
        port = COORDINATOR_PORT if service == "coordinator" else WORKER_PORT
        values = self.cluster.scrape(name, port)
        with self.lock:
            for metric, value in values.items():
                self.totals[service][metric] += value

    def finish(self):
        for service in self.totals:
            for name in self.cluster.containers(service):
                self.bank(service, name)


class Job:
    """One `toolfan submit` of N sleep tasks, run on its own thread."""

    def __init__(self, work, jid, n, ms_range, window, deadline_s):
        self.id, self.n, self.deadline_s = jid, n, deadline_s
        self.path = os.path.join(work, f"{jid}.json")
        tasks = [{"tool": "sleep", "args": {"ms": random.randint(*ms_range)}} for _ in range(n)]
        with open(self.path, "w") as f:
            json.dump({"id": jid, "tasks": tasks, "max_concurrency": window,
                       "deadline_ms": int(deadline_s * 1000)}, f)
        self.t0 = self.t1 = None
        self.rc, self.out, self.err = None, "", ""
        self.thread, self.stream, self.stored = None, None, None

    def start(self, toolfan, nats_url):
        self.thread = threading.Thread(target=self._run, args=(toolfan, nats_url), daemon=True)
        self.t0 = time.time()
        self.thread.start()

    def _run(self, toolfan, nats_url):
        cmd = [toolfan, "submit", self.path, "--nats-url", nats_url, "--compact"]
        env = dict(os.environ, RUST_LOG=os.environ.get("CHAOS_SUBMIT_LOG", "warn,async_nats=info"))
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:  # the client gives up by itself at the deadline + 5 s; this is the backstop
            self.out, self.err = p.communicate(timeout=self.deadline_s + 60)
        except subprocess.TimeoutExpired:
            p.kill()
            self.out, self.err = p.communicate()
            self.err += "\n(killed by scripts/chaos: no answer by the deadline + 60 s)"
        self.t1, self.rc = time.time(), p.returncode
        # A task that came back wrong: read what the results stream holds
        # for the job now, before the coordinators' retention purges it.
        self.stream = natsprobe.first_results(nats_url, self.id) if self.rc or '"ok":false' in self.out else None

    def wait(self):
        self.thread.join()

    @property
    def duration(self):
        return self.t1 - self.t0


def check(job):
    """The job's problems: a list of (index or None, what) and its results."""
    problems, results = [], []
    if job.rc != 0:
        why = submit_error(job)
        return [(None, f"submit failed (exit {job.rc}): {why}")], []
    try:
        results = json.loads(job.out)
    except ValueError as e:
        return [(None, f"unreadable output: {e}")], []
    count = defaultdict(int)
    for position, r in enumerate(results):
        count[r.get("index")] += 1
        if r.get("index") != position:
            problems.append((r.get("index"), f"out of order: at position {position}"))
        if not r.get("ok"):
            problems.append((r.get("index"), "error " + json.dumps(r)))
    for i in range(job.n):
        if count[i] == 0:
            problems.append((i, "missing"))
        elif count[i] > 1:
            problems.append((i, f"{count[i]} results"))
    for i in count:
        if not (isinstance(i, int) and 0 <= i < job.n):
            problems.append((i, "index out of range"))
    return problems, results


def quantiles(values):
    if not values:
        return "no jobs"
    v = sorted(values)
    pick = lambda q: v[min(len(v) - 1, int(round(q * (len(v) - 1))))]
    return f"min {v[0]:.2f} s, p50 {pick(0.5):.2f} s, p90 {pick(0.9):.2f} s, max {v[-1]:.2f} s"


def submit_error(job):
    """The CLI's own error line (`toolfan: ...`), else stderr's last line."""
    lines = ANSI.sub("", job.err).strip().splitlines() or ["(no message)"]
    return next((l for l in reversed(lines) if l.startswith("toolfan:")), lines[-1])


def refused(job):
    """Whether the submit failed before JetStream took the job (connecting,
    making sure of the streams, or the publish refused): nothing of it ran."""
    why = submit_error(job)
    return job.rc != 0 and not job.stored and any(
        s in why for s in ("was not accepted by JetStream", "creating stream", "connect"))


def summarize(mode, jobs, cluster, counters):
    """Prints the summary lines; returns (lost, late, failed submits, malformed answers)."""
    lost, late, other, reexec, ok = [], [], 0, 0, 0
    failed = [j for j in jobs if j.rc != 0]
    for job in jobs:
        problems, results = check(job)
        reexec += sum(1 for r in results if r.get("attempts", 0) > 1)
        ok += sum(1 for r in results if r.get("ok"))
        if refused(job):
            continue  # counted with the failed submits, not as lost
        lost_here = {i for i, what in problems if what == "missing" or what.startswith("error")}
        if job.rc != 0 or not results:
            lost_here = set(range(job.n))
        for i in sorted(lost_here):
            lost.append((job, i, next((w for j, w in problems if j == i), problems[0][1] if problems else "")))
        other += sum(1 for i, what in problems if i not in lost_here and i is not None)
        if job.duration > job.deadline_s:
            late.append(job)
    tasks = sum(j.n for j in jobs)
    k, p = cluster.kills, f"chaos {mode}:"
    print(f"\n{p} tasks: {tasks} submitted, {ok} ok, {tasks - ok} not ok "
          f"({sum(j.n for j in jobs if refused(j))} of them in jobs JetStream never accepted)")
    print(f"{p} jobs: {len(jobs)} submitted, {len(jobs) - len(failed)} answered, {len(failed)} submits failed "
          f"({sum(1 for j in failed if refused(j))} before JetStream accepted the job)"
          + "".join(f"\n{p}   job {j.id}: exit {j.rc} after {j.duration:.2f} s: "
                    f"{submit_error(j)[:200]}"
                    for j in failed))
    print(f"{p} kills: nats {k['nats']}, worker {k['worker']}, coordinator {k['coordinator']}, "
          f"redis {k['redis']} (restart), partitions {k['partition']}")
    line = f"{p} re-executions: {reexec} results with attempts > 1"
    for service, totals in counters.totals.items():
        if totals:
            line += f"; {service}s: " + ", ".join(f"{m} {v:.0f}" for m, v in sorted(totals.items()))
    print(line + " (counters summed over process lifetimes)")
    print(f"{p} lost: {len(lost)}" + "".join(f"\n{p}   job {j.id} index {i}: {w[:200]}" for j, i, w in lost[:10])
          + (f"\n{p}   ... {len(lost) - 10} more" if len(lost) > 10 else ""))
    print(f"{p} late: {len(late)}" + "".join(
        f"\n{p}   job {j.id}: answered {j.duration:.2f} s after submit started, deadline {j.deadline_s:.0f} s"
        for j in late))
    if other:
        print(f"{p} malformed answers (duplicate, out-of-order or out-of-range results): {other}")
    answered = [j for j in jobs if j.rc == 0]
    print(f"{p} job durations ({len(answered)} answered jobs): {quantiles([j.duration for j in answered])}")
    stored = [j for j in answered if j.stored]
    if stored:
        print(f"{p}   of which submit start → job stored: {quantiles([j.stored - j.t0 for j in stored])}")
        print(f"{p}   and job stored → answered: {quantiles([j.t1 - j.stored for j in stored])}"
              f" ({len(stored)} jobs with a `job done` line)")
    return lost, late, len(failed), other


JOB_DONE = re.compile(r"(\d{4}-\d\d-\d\dT[\d:.]+Z)\s+INFO job\{job=(\S+) .*job done .*duration_ms=(\d+)")


def stored_times(jobs, logs):
    """When JetStream stored each job, from its coordinator's `job done`
    line (answer time minus the duration it counts from the job's stored
    timestamp): splits a job's wall time into the submit (connect, stream
    checks, publish) and the cluster's part."""
    done = {}
    for text in logs.values():
        for m in JOB_DONE.finditer(text):
            when = datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp()
            stored = when - int(m.group(3)) / 1000  # a job answered twice (a takeover) says so twice
            done[m.group(2)] = min(stored, done.get(m.group(2), stored))
    for job in jobs:
        job.stored = done.get(job.id)
    return [j for j in jobs if j.stored]


def ranges(indices):
    out, run = [], []
    for i in sorted(indices):
        if run and i == run[-1] + 1:
            run.append(i)
        else:
            if run:
                out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
            run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def evidence(lost, logs, per_job=2, limit=40):
    """Prints, per job with lost tasks, which indices, the coordinators'
    lines about the job, and every line about its first lost tasks."""
    by_job = defaultdict(list)
    for job, index, what in lost:
        by_job[job].append((index, what))
    strip = lambda line: line.split(" ", 1)[1] if line[:4].isdigit() else line  # docker's timestamp
    for job, items in list(by_job.items())[:5]:
        print(f"\n== evidence: job {job.id}: {len(items)} lost, indices {ranges(i for i, _ in items)}")
        print(f"   first: index {items[0][0]}: {items[0][1][:300]}")
        if job.stream is None:
            print("   results stream: not read (no server answered)")
        else:
            stored = {i: job.stream.get(i) for i, _ in items}
            ok = [i for i, st in stored.items() if st and st[1].get("ok")]
            bad = [i for i, st in stored.items() if st and not st[1].get("ok")]
            none = [i for i, st in stored.items() if not st]
            print(f"   results stream right after the answer, first stored result of these {len(items)} tasks: "
                  f"ok {len(ok)} ({ranges(ok) or '-'}), a failure {len(bad)} ({ranges(bad) or '-'}), "
                  f"none {len(none)} ({ranges(none) or '-'})")
            if ok:
                seq, r = stored[ok[0]]
                print(f"   e.g. index {ok[0]}: ok at stream sequence {seq}, attempt {r.get('attempts')} "
                      f"on {r.get('worker')}, yet the caller got the line above")
        print(f"   submit started {time.strftime('%H:%M:%S', time.gmtime(job.t0))}.{int(job.t0 % 1 * 1000):03d}Z, "
              f"answered after {job.duration:.2f} s, exit {job.rc}")
        for line in ANSI.sub("", job.err).strip().splitlines()[-3:]:
            print(f"   submit stderr: {line[:300]}")
        lines = []
        for name, text in sorted(logs.items()):
            short = name.split("_", 1)[-1]
            for line in text.splitlines():
                if job.id in line and "index=" not in line:
                    lines.append(f"   {short}: {strip(line)[:350]}")
        print("   -- lines about the job (without an index):")
        print("\n".join(lines[:limit]) if lines else "   (no line: raise TOOLFAN_RUST_LOG)")
        for index, _ in items[:per_job]:
            print(f"   -- index {index}:")
            for name, text in sorted(logs.items()):
                short = name.split("_", 1)[-1]
                for line in text.splitlines():
                    if job.id in line and (f"index={index} " in line or line.endswith(f"index={index}")):
                        print(f"   {short}: {strip(line)[:350]}")
