"""The three modes of scripts/chaos, run against a compose cluster that
scripts/chaos has brought up (and tears down). Usage:

  chaos.py MODE --work DIR --artifacts DIR --project NAME --nats-url URLS --toolfan BIN
           [--jobs N] [--group N] [--duration S]   (soak; --jobs also for partition)
           [--rounds N] [--budget-s S]             (recovery)

Exit status: 0 when no task was lost, no job was late, no submit failed and
every answer had each index exactly once, in order; 1 otherwise."""

import argparse
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from chaoslib import (Cluster, Counters, Job, docker, evidence, log, quantiles,  # noqa: E402
                      stored_times, summarize)

NATS_NODES = ["nats1", "nats2", "nats3"]


class Plan:
    """Actions at times (seconds from start), each on its own thread so a
    slow docker call does not delay the next action."""

    def __init__(self):
        self.actions = []

    def at(self, t, fn, *args):
        self.actions.append((t, fn, args))

    def run(self, t0):
        threads = []
        for t, fn, args in sorted(self.actions, key=lambda a: a[0]):
            time.sleep(max(0.0, t0 + t - time.time()))
            th = threading.Thread(target=fn, args=args, daemon=True)
            th.start()
            threads.append(th)
        for th in threads:
            th.join(60)

    def background(self, t0):
        th = threading.Thread(target=self.run, args=(t0,), daemon=True)
        th.start()
        return th


def kill_service(cluster, counters, service, name, category):
    if counters and service in counters.totals:
        counters.bank(service, name)  # its counters die with it
    cluster.kill(name, category)


def heal(cluster):
    """Starts anything of the project that is not running (bounded)."""
    for service in ["nats1", "nats2", "nats3", "redis", "coordinator", "worker"]:
        for name in cluster.containers(service):
            if not cluster.state(name)[0]:
                docker("start", name, check=False)
                cluster.note(f"healed: started {name}")
    if not cluster.wait_healthy(nats_nodes(cluster), 60):
        log("NATS nodes not all healthy 60 s after the chaos ended")


def nats_nodes(cluster):
    return [n for node in NATS_NODES for n in cluster.containers(node)]


def start_staggered(jobs, group, spacing, toolfan, url, t0):
    for g in range(0, len(jobs), group):
        time.sleep(max(0.0, t0 + (g // group) * spacing - time.time()))
        for job in jobs[g:g + group]:
            job.start(toolfan, url)


# --- soak -------------------------------------------------------------------
def soak(a, cluster, counters):
    jobs = [Job(a.work, f"{a.run}-soak-{i:02d}", 100, (200, 600), 30, 60) for i in range(a.jobs)]
    nats = nats_nodes(cluster)
    workers, coordinators = cluster.containers("worker"), cluster.containers("coordinator")
    redis = cluster.containers("redis")[0]
    span = a.duration
    plan = Plan()
    for k, t in enumerate(range(10, span + 1, 10)):
        node = nats[k % len(nats)]
        plan.at(t, kill_service, cluster, None, "nats", node, "nats")
        plan.at(t + 4, cluster.start, node)
    for k, t in enumerate(range(3, span + 1, 3)):
        w = workers[k % len(workers)]
        plan.at(t, kill_service, cluster, counters, "worker", w, "worker")
        plan.at(t + 1.5, cluster.start, w)
    for k, t in enumerate(range(7, span + 1, 15)):
        c = coordinators[k % len(coordinators)]
        plan.at(t, kill_service, cluster, counters, "coordinator", c, "coordinator")
        plan.at(t + 2, cluster.start, c)
    plan.at(span / 2 + 3, restart_redis, cluster, redis)
    log(f"soak: {len(jobs)} jobs × 100 sleep tasks (200–600 ms, window 30, deadline 60 s), "
        f"{a.group} at a time over {span} s, with {len(plan.actions)} chaos actions")
    t0 = time.time()
    chaos = plan.background(t0)
    start_staggered(jobs, a.group, span / max(1, len(jobs) // a.group), a.toolfan, a.nats_url, t0)
    chaos.join()
    heal(cluster)
    for job in jobs:
        job.wait()
    return jobs


def restart_redis(cluster, name):
    docker("restart", name, check=False)
    cluster.kills["redis"] += 1
    cluster.note(f"restarted {name}")


# --- partition --------------------------------------------------------------
def tasks_leader(cluster, nats):
    """The NATS node leading TOOLFAN_TASKS (the most telling one to cut off)."""
    for name in nats:
        out = docker("exec", name, "wget", "-qO-", "-T", "2",
                     "http://127.0.0.1:8222/jsz?accounts=true&streams=true", timeout=5, check=False)
        try:
            for account in json.loads(out).get("account_details", []):
                for stream in account.get("stream_detail", []):
                    if stream.get("name") == "TOOLFAN_TASKS":
                        leader = (stream.get("cluster") or {}).get("leader")
                        match = [n for n in nats if leader and n.split("_")[-2] == leader]
                        if match:
                            log(f"TOOLFAN_TASKS is led by {leader}")
                            return match[0]
        except ValueError:
            continue
    log(f"could not tell which node leads TOOLFAN_TASKS; cutting off {nats[-1]}")
    return nats[-1]


def partition(a, cluster, counters):
    nats = nats_nodes(cluster)
    victims = [cluster.containers("worker")[0], cluster.containers("coordinator")[0], tasks_leader(cluster, nats)]
    cut = {}

    def disconnect():
        for name in victims:
            for net, aliases in cluster.networks(name).items():
                cut[name] = (net, aliases)
                docker("network", "disconnect", net, name, check=False)
        cluster.kills["partition"] += 1
        cluster.note(f"cut off from the network: {', '.join(victims)}")

    def reconnect():
        for name, (net, aliases) in cut.items():
            args = [x for alias in aliases for x in ("--alias", alias)]
            try:
                docker("network", "connect", *args, net, name)
            except RuntimeError as e:  # e.g. an alias Docker adds by itself
                log(f"reconnect with {aliases}: {e}; trying the service alias alone")
                docker("network", "connect", "--alias", aliases[0], net, name, check=False)
        cluster.note(f"healed the partition: {', '.join(cut)}")

    jobs = [Job(a.work, f"{a.run}-part-{i}", 100, (300, 300), 30, 60) for i in range(a.jobs)]
    plan = Plan()
    plan.at(1.0, disconnect)
    plan.at(9.0, reconnect)
    log(f"partition: {len(jobs)} jobs × 100 × 300 ms (window 30, deadline 60 s), two every 2.5 s; "
        f"cutting off {', '.join(victims)} from 1 s to 9 s")
    t0 = time.time()
    chaos = plan.background(t0)
    start_staggered(jobs, 2, 2.5, a.toolfan, a.nats_url, t0)
    chaos.join()
    for job in jobs:
        job.wait()
    heal(cluster)
    return jobs


# --- recovery ---------------------------------------------------------------
def recovery(a, cluster, counters):
    nats, jobs, started = nats_nodes(cluster), [], time.time()
    deadline_s = 30
    log(f"recovery: {a.rounds} rounds of 100 × 300 ms (window 30, ideal ~1.1 s, deadline {deadline_s} s); "
        "0.6 s in, one NATS node is killed")
    for r in range(a.rounds):
        if time.time() - started > a.budget_s - (deadline_s + 40):
            log(f"stopping after {r} rounds: the time budget ({a.budget_s} s) is nearly spent")
            break
        node = nats[r % len(nats)]
        job = Job(a.work, f"{a.run}-rec-{r:02d}", 100, (300, 300), 30, deadline_s)
        job.start(a.toolfan, a.nats_url)
        time.sleep(max(0.0, job.t0 + 0.6 - time.time()))
        kill_service(cluster, None, "nats", node, "nats")
        job.wait()
        job.node = node
        jobs.append(job)
        docker("start", node, check=False)
        healthy = cluster.wait_healthy(nats, 60)
        okay = "ok" if job.rc == 0 and '"ok":false' not in job.out else "PROBLEM"
        log(f"round {r + 1:2d}: killed {node}, job {job.duration:6.2f} s ({okay}); "
            f"{'all three healthy' if healthy else 'NOT all healthy after 60 s'}")
    return jobs


def recovery_table(jobs):
    print()
    for r, j in enumerate(jobs):
        split = (f" (submit start → stored {j.stored - j.t0:5.2f} s, stored → answered {j.t1 - j.stored:5.2f} s)"
                 if j.stored else "")
        bad = j.n - j.out.count('"ok":true')
        print(f"chaos recovery: round {r + 1:2d} ({j.node.split('_')[-2]} killed): {j.duration:6.2f} s{split}"
              + (f"; {bad} tasks not ok" if bad else ""))
    print("chaos recovery: round durations: " + " ".join(f"{j.duration:.2f}" for j in jobs))
    print(f"chaos recovery: distribution: {quantiles([j.duration for j in jobs])}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["soak", "partition", "recovery"])
    for flag in ("--work", "--artifacts", "--project", "--nats-url", "--toolfan"):
        ap.add_argument(flag, required=True)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--jobs", type=int, default=None)
    ap.add_argument("--group", type=int, default=2, help="soak: jobs submitted at once")
    ap.add_argument("--duration", type=int, default=60, help="soak: seconds of submissions and chaos")
    ap.add_argument("--budget-s", type=int, default=330, help="recovery: stop starting rounds past this")
    a = ap.parse_args()
    a.jobs = a.jobs or {"soak": 50, "partition": 8, "recovery": 0}[a.mode]
    a.run = f"chaos{os.getpid() % 100000:05d}{int(time.time()) % 100000:05d}"
    os.makedirs(a.artifacts, exist_ok=True)
    cluster = Cluster(a.project, a.nats_url, a.toolfan)
    counters = Counters(cluster)
    started = time.time()
    jobs = {"soak": soak, "partition": partition, "recovery": recovery}[a.mode](a, cluster, counters)
    counters.finish()
    logs = cluster.save_logs(a.artifacts)
    stored_times(jobs, logs)
    with open(os.path.join(a.artifacts, "jobs.tsv"), "w") as f:
        f.write("job\tstart_unix\tstored_unix\tend_unix\tseconds\texit\n")
        for j in jobs:
            stored = f"{j.stored:.3f}" if j.stored else "-"
            f.write(f"{j.id}\t{j.t0:.3f}\t{stored}\t{j.t1:.3f}\t{j.duration:.3f}\t{j.rc}\n")
            with open(os.path.join(a.artifacts, f"{j.id}.out.json"), "w") as out:
                out.write(j.out)
            with open(os.path.join(a.artifacts, f"{j.id}.submit.log"), "w") as err:
                err.write(j.err)
    if a.mode == "recovery":
        recovery_table(jobs)
    lost, late, failed, other = summarize(a.mode, jobs, cluster, counters)
    print(f"chaos {a.mode}: wall time of the run {time.time() - started:.0f} s; logs in {a.artifacts}")
    if lost:
        evidence(lost, logs)
    return 1 if lost or late or failed or other else 0


if __name__ == "__main__":
    sys.exit(main())
