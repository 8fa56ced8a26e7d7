#!/usr/bin/env bash
# Runs the fanout, throughput and limits workloads on Celery 5 with a Redis
# broker, and toolfan's same scenarios in the same run, and prints both side
# by side. Installs Celery into a virtualenv beside this file.
#
#   bench/peers/celery/run.sh            # from the repository root
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
work=$(mktemp -d)
pids=()         # redis-server
worker_pids=()  # the Celery workers of the current scenario
cleanup() { for p in "${pids[@]}" "${worker_pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$root/scripts/install-deps"
if [ ! -x "$here/.venv/bin/celery" ]; then
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install -q "celery[redis]>=5.3,<6"
fi
py="$here/.venv/bin/python"
celery="$here/.venv/bin/celery"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" >/dev/null &
pids+=($!)
sleep 0.5
export CELERY_BROKER="redis://127.0.0.1:$port/0"
cd "$here"

start_workers() { # COUNT CONCURRENCY POOL
    for i in $(seq 1 "$1"); do
        "$celery" -A tasks worker --loglevel WARNING -n "w$i@%h" --concurrency "$2" --pool "$3" --without-gossip --without-mingle >/dev/null 2>&1 &
        worker_pids+=($!)
    done
    sleep 4
}
# Stops the workers start_workers started, by their pids (SIGTERM: a warm
# shutdown that also stops a prefork pool's children), SIGKILL after 10 s.
stop_workers() {
    local p i
    for p in "${worker_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${worker_pids[@]}"; do
        for i in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
        wait "$p" 2>/dev/null || true
    done
    worker_pids=()
}

echo "celery: fanout (1 worker, 64 threads)" >&2
start_workers 1 64 threads
celery_fanout=$("$py" bench.py fanout 20)
stop_workers
echo "celery: throughput (2 workers, prefork 2 each)" >&2
start_workers 2 2 prefork
celery_throughput=$("$py" bench.py throughput 5000)
stop_workers
echo "celery: limits (rate_limit 200/s on 3 workers)" >&2
CELERY_RATE_LIMIT=200/s start_workers 3 4 threads
celery_limits=$("$py" bench.py limits 2000)
stop_workers

echo "toolfan: the same scenarios" >&2
cd "$root"
cargo build -q --release -p toolfan-cli
toolfan=target/release/toolfan
tf_fanout=$($toolfan bench fanout --json 2>/dev/null)
tf_throughput=$($toolfan bench throughput --json 2>/dev/null)
tf_limits=$($toolfan bench limits --json 2>/dev/null)

python3 - "$celery_fanout" "$celery_throughput" "$celery_limits" "$tf_fanout" "$tf_throughput" "$tf_limits" <<'PY'
import json, sys
cf, ct, cl, tf, tt, tl = (json.loads(a) for a in sys.argv[1:])
tf1 = tf["rows"][0]
print("workload                                   celery              toolfan             ratio")
print(f"fanout 50 × 100 ms, p50 makespan          {cf['poll_0']['p50_ms']:7.1f} ms (poll 0)  {tf1['p50_ms']:7.1f} ms          {cf['poll_0']['p50_ms']/tf1['p50_ms']:5.2f}× faster")
print(f"  (celery with its default 0.5 s poll)     {cf['default_poll']['p50_ms']:7.1f} ms")
print(f"throughput, echo tasks/s                   {ct['tasks_per_s']:7.0f}             {tt['toolfan_tasks_per_s']:7.0f}           {tt['toolfan_tasks_per_s']/ct['tasks_per_s']:5.1f}× more")
print(f"limit 200/s on 3 workers, max in any 1 s   {cl['max_in_any_1s']:7d}             {tl['max_in_any_1s']:7d}           (bound 200 + burst)")
print(f"  observed fleet rate over 10 s            {cl['observed_per_s']:7.0f}/s           {tl['sustained_per_s']:7.0f}/s   (celery ran {cl['ran']} of {cl['calls']} offered)")
PY
