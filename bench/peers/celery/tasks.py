"""Celery tasks for the peer benchmark: the same workloads as `toolfan bench`."""
import os
import time

from celery import Celery

app = Celery("peer", broker=os.environ["CELERY_BROKER"], backend=os.environ["CELERY_BROKER"])
app.conf.update(worker_prefetch_multiplier=1, task_acks_late=False, result_expires=600)


@app.task
def sleep(ms):
    time.sleep(ms / 1000)
    return {"slept_ms": ms}


@app.task
def echo(args):
    return args


@app.task(rate_limit=os.environ.get("CELERY_RATE_LIMIT", "200/s"))
def limited():
    # When the call started, to count starts per second across the fleet.
    return time.time()
