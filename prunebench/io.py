"""Atomic, checksummed file writes: a run killed mid-write never leaves a half-written file behind,
and a file damaged on disk is detected when it is read instead of being used.

Every torch file and every state record carries a ``checksum`` of its content (SHA-256 over the
tensors' bytes and the values, in a fixed order), verified by :func:`load_torch` and
:func:`read_json`. The files stay plain ``torch.load`` / JSON files for other tools.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from prunebench.errors import DamagedFileError

CHECKSUM = "checksum"


_TMP_SUFFIX = ".tmp"


def _atomic(path: str | os.PathLike, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; results should get the usual permissions (umask applied).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_leftovers(directory: Path) -> None:
    """Delete the temporary files of writes a kill -9 interrupted in ``directory`` (only its
    writer may call this: another process's write in progress would be lost)."""
    if directory.is_dir():
        for tmp in directory.glob(f".*{_TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)


def _feed(h: Any, obj: Any) -> None:
    """Feed ``obj`` to the hash ``h`` in a canonical order (dict keys sorted, types named)."""
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for key in sorted(obj, key=repr):
            _feed(h, key)
            _feed(h, obj[key])
    elif isinstance(obj, list | tuple):
        h.update(f"L{len(obj)}".encode())
        for item in obj:
            _feed(h, item)
    else:
        h.update(f"V{obj!r};".encode())


def checksum(obj: Any) -> str:
    """SHA-256 of ``obj``'s content (tensors, containers, numbers, strings)."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (tables a run vouches for in its summary)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_torch_save(obj: dict[str, Any], path: str | os.PathLike) -> None:
    """Save the mapping ``obj`` with its checksum, atomically."""
    blob = {**obj, CHECKSUM: checksum(obj)}
    _atomic(path, lambda f: torch.save(blob, f))


def load_torch(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping saved by :func:`atomic_torch_save` in ``path`` (without its checksum), or a
    DamagedFileError naming the file when it is missing, unreadable or not what was written."""
    path = Path(path)
    if not path.is_file():
        raise DamagedFileError(f"{path} is missing")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, flipped bytes in the pickle, not a torch file at all
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DamagedFileError(
            f"{path} is damaged: it cannot be read as a prunebench file ({type(e).__name__}: {first})"
        ) from None
    if not isinstance(blob, dict) or CHECKSUM not in blob:
        raise DamagedFileError(f"{path} has no checksum: it was not written by this version of prunebench")
    expected = blob.pop(CHECKSUM)
    if checksum(blob) != expected:
        raise DamagedFileError(f"{path} is damaged: its content does not match its checksum")
    return blob


def atomic_write_text(text: str, path: str | os.PathLike) -> None:
    _atomic(path, lambda f: f.write(text.encode()))


def write_json(obj: dict[str, Any], path: str | os.PathLike, checked: bool = False) -> None:
    """Write ``obj`` as JSON; ``checked`` adds a checksum that :func:`read_json` verifies (state
    records that later decisions rest on)."""
    if checked:
        obj = {**obj, CHECKSUM: checksum(json.loads(json.dumps(obj)))}
    atomic_write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", path)


def read_json(path: str | os.PathLike, checked: bool = False) -> dict[str, Any]:
    """The JSON mapping in ``path``, or a DamagedFileError naming it; ``checked`` also verifies
    (and removes) the checksum that ``write_json(..., checked=True)`` added."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise DamagedFileError(f"{path} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedFileError(f"{path} is damaged: it is not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise DamagedFileError(f"{path} is damaged: it holds a {type(obj).__name__}, not a mapping")
    if checked:
        if CHECKSUM not in obj:
            raise DamagedFileError(f"{path} has no checksum: it was not written by this version of prunebench")
        expected = obj.pop(CHECKSUM)
        if checksum(obj) != expected:
            raise DamagedFileError(f"{path} is damaged: its content does not match its checksum")
    return obj
