"""A task for tests only, loaded into a test worker with ``celery worker -I tests.site.thread_probe``:
it reports the torch threads of the pool process that ran it."""

from pathlib import Path

from celery import shared_task


@shared_task(name="tests.thread_probe")
def report_torch_threads(path: str) -> None:
    import os

    import torch

    Path(path).write_text(f"{os.getpid()} {torch.get_num_threads()}")
