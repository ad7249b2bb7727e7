"""The embedded first run's Celery transport: kombu's filesystem transport, delivering whole messages only.

kombu's writer creates a message file under its final name and then writes into it. A worker polling the folder
can move and read the file in between, get an empty payload, and stop on ``JSONDecodeError`` ("Unrecoverable
error": the whole worker goes, a demo's training run with it; seen during ``make run`` on a busy 2-core machine).
Here a message is written under a name the reader skips (``.<name>.part``) and renamed to its final name once
complete; a rename within one folder is atomic, so a reader sees all of a message or nothing.

Settings use it for ``filesystem://`` brokers (``CELERY_BROKER_TRANSPORT``); Redis and RabbitMQ are untouched.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Write ``payload`` beside the queue's files, then rename it into the queue in one step."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")
        try:
            with open(partial, "wb") as fh:
                fh.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
