"""A folder that a generator writes once, atomically, and that records the
settings it was made with.

The toy datasets create their files on first use, possibly in several
processes at once (torchrun ranks that all find the data missing). Each
process writes to a temporary sibling folder and renames it into place, so
no process ever reads half a dataset; the losers of the race discard their
copy. A JSON file in the folder records the generator's settings, and asking
for other settings later is refused instead of silently mixing two datasets.
"""
import json
import os
import os.path as osp
import shutil
import tempfile
from typing import Callable

from ..utils.user_errors import UserError


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _recorded(root: str, meta_file: str, what: str) -> dict:
    path = osp.join(root, meta_file)
    if not osp.isfile(path):
        raise UserError(
            f'{root!r} exists but was not made by the {what} generator (no '
            f'{meta_file}); remove it to have it generated, or choose '
            f'another data_root')
    with open(path) as f:
        return json.load(f)


def ensure_generated_folder(root: str, meta: dict, meta_file: str,
                            write: Callable[[str], None], what: str,
                            any_settings: bool = False) -> str:
    """Make ``root`` with ``write`` unless it exists; return ``root``.

    Args:
        root (str): The folder.
        meta (dict): The generator's settings, stored in ``meta_file`` (as
            JSON) when the folder is made, and compared with what an
            existing folder stores.
        meta_file (str): Name of the settings file in ``root``.
        write (callable): ``write(folder)`` fills an empty ``folder``.
        what (str): Names the generator in messages ('toy COCO').
        any_settings (bool): Accept an existing folder whatever settings it
            was made with (when the caller asked for none in particular).

    Raises:
        UserError: ``root`` exists but was not made by this generator, or
            was made with other settings than ``meta``.
    """
    root = root.rstrip('/') or '/'
    if not osp.exists(root):
        from mmengine.logging import print_log
        print_log(f'Generating the {what} dataset in {root} (once) ...',
                  logger='current')
        parent = osp.dirname(osp.abspath(root))
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f'.{osp.basename(root)}.tmp',
                               dir=parent)
        try:
            write(tmp)
            with open(osp.join(tmp, meta_file), 'w') as f:
                json.dump(meta, f, indent=1)
            try:
                os.rename(tmp, root)
            except OSError:
                # Another process renamed its copy first (the target is no
                # longer empty); anything else is a real error.
                if not osp.isfile(osp.join(root, meta_file)):
                    raise
        finally:
            if osp.exists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)
    found = _recorded(root, meta_file, what)
    if not any_settings and found != _as_json(meta):
        raise UserError(
            f'the {what} dataset at {root!r} was generated with {found}, '
            f'but {_as_json(meta)} was asked for; remove the folder to '
            f'regenerate it, or choose another data_root')
    return root
