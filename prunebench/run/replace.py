"""Replacing what a directory holds so that a failed replacement leaves it as it was.

``--replace-stale`` hands a directory holding another config's run (or dense model) to a new
one. The old files are moved aside into a hidden ``.replaced-*`` folder first, with a warning
that names them; when the new run fails (an error in it: a diverged training, a bad input) its
files are removed and the old ones moved back; only when it has finished are the old files
deleted. When it is interrupted (Ctrl-C, kill -9, a full disk) it keeps what it saved, to
resume, and the folder stays: the next run that finishes in the directory deletes it, a run of
the old config started with ``--replace-stale`` takes its files back (:func:`reclaim`), and
until then refusals name it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("prunebench")

PREFIX = ".replaced-"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def stashes(directory: Path) -> list[Path]:
    """Folders of replaced files that an interrupted replacement left in ``directory``."""
    return sorted(directory.glob(f"{PREFIX}*")) if directory.is_dir() else []


@contextmanager
def replacing(directory: Path, names: Sequence[str], what: str) -> Iterator[None]:
    """Run the block with the entries ``names`` of ``directory`` moved aside (see the module)."""
    present = [n for n in names if (directory / n).exists() or (directory / n).is_symlink()]
    if not present:
        yield
        return
    stash = Path(tempfile.mkdtemp(prefix=PREFIX, dir=directory))
    for name in present:
        os.replace(directory / name, stash / name)
    log.warning("replacing %s in %s (%s): kept in %s until the new one finishes", what, directory,
                ", ".join(present), stash)  # fmt: skip
    try:
        yield
    except (KeyboardInterrupt, OSError):
        # Interrupted, or the disk is full: the new run resumes from what it saved when started
        # again, as after a kill -9; the old files stay aside until it finishes.
        log.warning("the new run stopped; it resumes when started again, and %s stays until it finishes", stash)
        raise
    except BaseException:
        for name in names:
            _remove(directory / name)
        for name in present:
            os.replace(stash / name, directory / name)
        stash.rmdir()
        log.warning("the replacement did not finish: %s holds %s as before", directory, what)
        raise
    shutil.rmtree(stash)


def discard_stashes(directory: Path) -> None:
    """Delete what interrupted replacements left: the run that replaced those files has finished."""
    for stash in stashes(directory):
        log.warning("deleting %s, left by an interrupted replacement that has now finished", stash)
        shutil.rmtree(stash)


def reclaim(directory: Path, stash: Path, names: Sequence[str]) -> None:
    """Move the entries ``names`` of ``stash`` back into ``directory`` (an interrupted
    replacement's old run, wanted again); what ``directory`` holds under those names goes into a
    new stash, deleted when the run finishes."""
    mine = [n for n in names if (stash / n).exists()]
    theirs = [n for n in names if (directory / n).exists() and (n in mine or n != "dense")]
    aside = Path(tempfile.mkdtemp(prefix=PREFIX, dir=directory))
    for name in theirs:
        os.replace(directory / name, aside / name)
    for name in mine:
        os.replace(stash / name, directory / name)
    shutil.rmtree(stash)
    log.warning("took back the run kept in %s; what %s held instead is in %s", stash, directory, aside)
