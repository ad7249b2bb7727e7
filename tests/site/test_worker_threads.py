"""Torch threads per worker process (identification.ops.threads), seen from a task in a real worker."""

import subprocess
import sys
import uuid

import pytest

from ml.device import worker_threads
from tests.conftest import REPO, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(
    "pool, concurrency, configured, expected",
    [
        ("prefork", 2, "0", worker_threads(2)),  # each child an equal share, although OMP_NUM_THREADS says 2
        ("solo", 1, "1", 1),  # ML_TORCH_THREADS wins
    ],
)
def test_pool_processes_run_with_their_share_of_the_cores(
    celery_worker, tmp_path, pool, concurrency, configured, expected
):
    from identification.models import WorkerHeartbeat
    from whalesite.celery import app

    queue, name = f"probe-{uuid.uuid4().hex[:8]}", f"probe-{uuid.uuid4().hex[:8]}"
    env = {**celery_worker.env, "ML_TORCH_THREADS": configured, "OMP_NUM_THREADS": "2"}
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "whalesite",
            "worker",
            "-Q",
            queue,
            f"--pool={pool}",
            "-c",
            str(concurrency),
            "-I",
            "tests.site.thread_probe",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "INFO",
            "-n",
            f"{name}@%h",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        beat = wait_for(
            lambda: WorkerHeartbeat.objects.filter(hostname__startswith=name).first(),
            timeout=90,
            message="the probe worker's heartbeat",
        )
        out = tmp_path / "threads.txt"
        app.send_task("tests.thread_probe", args=[str(out)], queue=queue)
        wait_for(out.exists, timeout=60, message="the probe task")
        pid, threads = (int(v) for v in out.read_text().split())
        assert threads == expected
        assert (pid != proc.pid) == (pool == "prefork")  # prefork: a child ran it; solo: the worker itself
        assert f"{expected} torch thread" in beat.device  # shown on the health page
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if proc.returncode not in (0, -15, None):
            print((tmp_path / "worker.log").read_text()[-3000:])
