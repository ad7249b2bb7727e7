"""A daemon thread that calls ``beat()`` every ``interval`` seconds while a block of work runs: the
training run's ``heartbeat_at`` and the photo's processing lease are kept this way, so a long step with
no progress callbacks still reads as alive, while a killed process simply goes silent."""

from __future__ import annotations

import logging
import threading

from django.db import connection

log = logging.getLogger(__name__)


class Beating:
    def __init__(self, interval: float, beat, name: str = "heartbeat"):
        self.interval = interval
        self.beat = beat
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def _loop(self) -> None:
        try:
            while not self.stop.wait(self.interval):
                try:
                    self.beat()
                except Exception:
                    log.warning("%s failed", self.thread.name, exc_info=True)
        finally:
            connection.close()  # the thread's own connection

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=5)
