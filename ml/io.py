"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file ``ml`` writes that another process may read while it is being written (model folders read
by the site's workers, the crop cache shared by concurrent runs, CSVs and JSON memos) goes through
:func:`atomic_path`: the content is written to a temporary file in the same folder (so that the final
``os.replace`` is a rename on one file system, atomic on POSIX and Windows) and renamed over the target
only when writing succeeded. A failed write leaves the old file and no temporary file behind.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _temp_name(path: Path, suffix: str) -> Path:
    # pid + random part: concurrent processes and threads writing the same target never share a temp file
    return path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{suffix}")


@contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on a clean exit rename it over ``path``.

    ``suffix`` ends the temporary name, for writers that insist on an extension (``np.save`` appends
    ``.npy`` to any other name). The parent folder is created when missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding=encoding)


def atomic_write_json(path: str | Path, obj: Any, **dumps_kwargs: Any) -> None:
    """``json.dumps(obj, **dumps_kwargs)`` written atomically (serialised first: a value json cannot
    encode raises before the target is touched)."""
    atomic_write_text(path, json.dumps(obj, **dumps_kwargs))


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` written atomically (torch is imported here, not by ``ml.io``)."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
