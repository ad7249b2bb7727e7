import os
import subprocess
import sys

import pytest

from ml.device import available_cores, worker_threads


@pytest.mark.parametrize(
    "processes, cores, expected",
    [
        (1, 2, 2),
        (2, 2, 1),
        (3, 2, 1),
        (2, 16, 8),
        (3, 16, 5),
        (0, 4, 4),
    ],
)
def test_worker_threads_is_an_equal_share_of_the_cores_and_at_least_one(processes, cores, expected):
    assert worker_threads(processes, cores) == expected


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_available_cores_follows_the_affinity_mask_not_the_host():
    """A container's cpuset (here: taskset to one core) is what the process may use."""
    code = (
        "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
        "from ml.device import available_cores, worker_threads; print(available_cores(), worker_threads(1))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    ).stdout.split()
    assert out == ["1", "1"]
    assert available_cores() == len(os.sched_getaffinity(0))
