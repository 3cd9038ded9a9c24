"""Files that appear on disk only complete.

A killed process (``kill -9``, OOM killer, preempted node) or a power cut in
the middle of a plain ``open(path, 'wb').write(data)`` leaves a truncated file
under its final name, and a reader cannot tell it from a complete one without
parsing it. Here the data goes to a hidden temporary file in the same folder
(``os.replace`` is atomic only within one file system), is flushed and
fsync'd, and is then renamed over the final name; the folder is fsync'd so
that the rename itself survives a power cut. The final name therefore holds
either the old content or the new one, never a mix.
"""
import os
import os.path as osp
import re
from typing import List

# `.epoch_2.pth.incomplete-12345`: hidden, so `ls`/`*.pth` globs skip it, and
# says what it is if someone finds one. The pid tells whose write it is.
_INCOMPLETE = re.compile(r'^\.(?P<target>.+)\.incomplete-(?P<pid>\d+)$')


def incomplete_path(path: str) -> str:
    """Where :func:`write_atomically` stages ``path`` while writing it."""
    folder, name = osp.split(path)
    return osp.join(folder, f'.{name}.incomplete-{os.getpid()}')


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder or '.', os.O_RDONLY)
    except OSError:  # platforms without directory handles (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # some network file systems refuse it; rename stands
        pass
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is never seen partial."""
    folder = osp.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    staged = incomplete_path(path)
    try:
        with open(staged, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(staged, path)
    except BaseException:
        # an exception (disk full, ...) leaves nothing behind; a kill leaves
        # the staged file for remove_incomplete_files()
        if osp.exists(staged):
            os.remove(staged)
        raise
    _fsync_folder(folder)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_incomplete_files(folder: str) -> List[str]:
    """Delete the staged files that killed writers left in ``folder``; return
    their names. A file staged by another live process (a second run in the
    same folder) is left alone: its write may still be in progress."""
    removed = []
    try:
        names = sorted(os.listdir(folder))
    except OSError:  # no such folder yet: nothing was ever written there
        return removed
    for name in names:
        match = _INCOMPLETE.match(name)
        if not match:
            continue
        pid = int(match['pid'])
        if pid != os.getpid() and _alive(pid):
            continue
        path = osp.join(folder, name)
        if osp.isfile(path):
            os.remove(path)
            removed.append(name)
    return removed
