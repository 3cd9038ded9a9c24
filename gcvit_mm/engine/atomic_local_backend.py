"""mmengine's local file backend, with writes that are never seen partial.

mmengine writes every checkpoint through ``get_file_backend(path,
backend_args).put(bytes, path)`` (``mmengine.runner.checkpoint
.save_checkpoint``), so naming this backend in ``backend_args`` makes
``Runner.save_checkpoint`` atomic without copying it.
"""
from pathlib import Path
from typing import Union

from mmengine.fileio import LocalBackend, register_backend

from .atomic_files import write_atomically

ATOMIC_LOCAL_BACKEND = 'gcvit_mm_atomic_local'


class AtomicLocalBackend(LocalBackend):
    """``LocalBackend`` whose ``put``/``put_text`` stage the data in a
    temporary file and rename it into place (see :mod:`.atomic_files`)."""

    def put(self, obj: bytes, filepath: Union[str, Path]) -> None:
        write_atomically(str(filepath), obj)

    def put_text(self,
                 obj: str,
                 filepath: Union[str, Path],
                 encoding: str = 'utf-8') -> None:
        write_atomically(str(filepath), obj.encode(encoding))


# By name only (no URI prefix): local paths keep mmengine's LocalBackend
# unless a caller asks for this one. force: re-importing is harmless.
register_backend(ATOMIC_LOCAL_BACKEND, AtomicLocalBackend, force=True)
