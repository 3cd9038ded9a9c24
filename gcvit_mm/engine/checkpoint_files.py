"""Is a checkpoint file complete, and which is the newest complete one?

``torch.save`` writes a zip archive whose central directory comes last, so a
file cut short anywhere has none, and one whose directory lists entries past
the end of the file is cut short too. Reading the directory and the small
``data.pkl`` (CRC-checked) costs milliseconds, where ``torch.load`` of a
multi-GB checkpoint would cost minutes; the tensors' own bytes are not read.
"""
import os
import os.path as osp
import re
import zipfile
from typing import List, Optional, Tuple


def checkpoint_problem(path: str) -> Optional[str]:
    """None if ``path`` is a complete torch checkpoint, else why not, worded
    to follow the path ('... does not exist')."""
    if not osp.exists(path):
        return 'does not exist'
    if not osp.isfile(path):
        return 'is not a file'
    try:
        size = osp.getsize(path)
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
            pickles = [e for e in entries if e.filename.endswith('data.pkl')]
            if not pickles:
                return 'is a zip archive without data.pkl (not a checkpoint)'
            if any(e.header_offset + e.compress_size > size for e in entries):
                return (f'is truncated ({size} bytes, its zip directory '
                        'lists data past the end)')
            archive.read(pickles[0])  # checks its CRC
    except zipfile.BadZipFile as e:
        if size == 0:
            return 'is empty (0 bytes)'
        return f'is truncated or corrupt ({size} bytes; zip: {e})'
    except OSError as e:
        return f'cannot be read ({e.strerror or e})'
    return None


def _step_pattern(filename_tmpl: str) -> Optional['re.Pattern']:
    """'epoch_{}.pth' -> ^epoch_(\\d+)\\.pth$ (None for other templates)."""
    parts = re.split(r'\{[^{}]*\}', filename_tmpl)
    if len(parts) != 2:
        return None
    return re.compile(f'^{re.escape(parts[0])}(\\d+){re.escape(parts[1])}$')


def saved_checkpoints(folder: str, filename_tmpl: str) -> List[str]:
    """Paths in ``folder`` named by ``filename_tmpl`` (CheckpointHook's
    ``epoch_{}.pth``/``iter_{}.pth``), newest (largest step) first. Best and
    published checkpoints have other names: they hold no optimizer state."""
    pattern = _step_pattern(filename_tmpl)
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    steps: List[Tuple[int, str]] = []
    for name in names:
        match = pattern.match(name) if pattern else None
        if match:
            steps.append((int(match.group(1)), name))
    return [osp.join(folder, name) for _, name in sorted(steps, reverse=True)]


def newest_complete_checkpoint(
        folder: str,
        filename_tmpl: str,
        skip: Optional[str] = None) -> Tuple[Optional[str], List[str]]:
    """The newest complete checkpoint in ``folder`` (``skip``: one already
    known to be broken), checking files newest first until one passes, and
    what was wrong with the newer ones ('epoch_3.pth is truncated ...')."""
    rejected = []
    for path in saved_checkpoints(folder, filename_tmpl):
        if skip is not None and osp.abspath(path) == osp.abspath(skip):
            continue
        problem = checkpoint_problem(path)
        if problem is None:
            return path, rejected
        rejected.append(f'{osp.basename(path)} {problem}')
    return None, rejected
