"""Per worker process: the ``Identifier`` of each model version, loaded once (at most ``IDENTIFIERS_KEPT``).

Every pipeline task calls :func:`active_version` first: one cheap query finds the active
ModelVersion of the photo's species; its identifier is loaded only when that changes (a promotion or
rollback is picked up without a worker restart). A lock makes it safe for threads; prefork children each have their own
copy (the cache is filled lazily, after the fork).

``ml`` modules that load torch are imported inside functions, here and in the rest of the site:
the web process imports this module and should not pay for torch until it embeds something.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from django.conf import settings

from ..models import ModelVersion

log = logging.getLogger(__name__)

_lock = threading.RLock()
# each species has its own active version (and one being promoted): two species' photos taken in turn must
# not reload each other's model
IDENTIFIERS_KEPT = 4
_identifiers: OrderedDict[int, object] = OrderedDict()  # version id -> Identifier, least recently used first


def model_dir(version) -> Path:
    path = Path(version.artifact_dir)
    return path if path.is_absolute() else Path(settings.ML_ROOT) / path


def active_version(species):
    """The active version of ``species`` (each species has its own model), or None: no model for it yet."""
    if species is None or not species.profile:
        return None
    return ModelVersion.objects.active_for(species).first()


def identifier(version):
    """The ``ml.identifier.Identifier`` of ``version``, loaded once per process."""
    from ml.identifier import Identifier  # torch loads only in the processes that embed

    with _lock:
        ident = _identifiers.get(version.pk)
        if ident is not None:
            _identifiers.move_to_end(version.pk)
            return ident
        device = None
        if settings.ML_DEVICE:
            from ml.device import pick_device

            device = pick_device(settings.ML_DEVICE)
        log.info("Loading model version %s from %s", version.name, model_dir(version))
        ident = Identifier.load(str(model_dir(version)), device=device)
        _identifiers[version.pk] = ident
        while len(_identifiers) > IDENTIFIERS_KEPT:
            _identifiers.popitem(last=False)
        return ident


def vector_from_bytes(data) -> np.ndarray:
    return np.frombuffer(bytes(data), dtype=np.float32)


def reset() -> None:
    """Forget the loaded identifiers (tests, or after a fork)."""
    with _lock:
        _identifiers.clear()
