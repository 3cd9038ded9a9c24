"""Let mmengine resume its own checkpoints under torch's safe loading.

torch >= 2.6 loads with ``weights_only=True`` and mmengine 0.10.7 calls plain
``torch.load``, so ``--resume`` stops at the first non-tensor global of the
checkpoint (its message hub's log history). A checkpoint written by
mmengine's CheckpointHook holds exactly these globals (listed by
``torch.serialization.get_unsafe_globals_in_checkpoint``):

- numpy's ``ndarray``, ``dtype`` (and its per-type classes such as
  ``numpy.dtypes.Float64DType``), ``_reconstruct`` and ``scalar``: the log
  history values;
- ``mmengine.logging.HistoryBuffer``: the log history itself;
- ``builtins.getattr``: each HistoryBuffer pickles its table of statistics
  methods (``HistoryBuffer.min``, ``.max``, ...), and pickle refers to a
  method as ``getattr(HistoryBuffer, 'min')``.

``getattr`` itself is never allowed: a crafted file could walk from any
allowed object to ``os.system``. In its place the unpickler gets
:func:`history_buffer_method`, which resolves only HistoryBuffer's own
statistics methods and refuses everything else.

mmengine's own loaders call ``torch.load`` without ``weights_only``, which
``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` (a common workaround) turns into
``weights_only=False``: a checkpoint could then run code. So
:func:`install_safe_loading` also routes mmengine's local and http(s)
checkpoint schemes (``load_from``, ``--resume``, ``init_detector``, any
``Pretrained`` init) through :func:`gcvit_mm.checkpoint.load_checkpoint_file`,
which always passes ``weights_only=True``, and so the named-model schemes
that resolve to a URL (``torchvision://``, ``modelzoo://``,
``open-mmlab://``, ``mmcls://``: mmdet's ResNet and ResNeXt configs use
them), and the object-store scheme (``s3://``, ``petrel://``) through
:func:`gcvit_mm.checkpoint.load_checkpoint_bytes`. Still on mmengine's plain
``torch.load``: ``pavi://`` (its SDK downloads the file) and
``open-mmlab://`` names that map to a local file under mmengine's home.
"""
import pickle
from typing import Any

import numpy as np
import torch
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.logging import HistoryBuffer
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from ..checkpoint.load import load_checkpoint_bytes, load_checkpoint_file


def history_buffer_method(owner: Any, name: str) -> Any:
    """``getattr`` restricted to ``HistoryBuffer.<statistics method>``."""
    if owner is HistoryBuffer and callable(
            HistoryBuffer.__dict__.get(name)) and not name.startswith('_'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) while loading a checkpoint: '
        f'only HistoryBuffer statistics methods are allowed')


def _numpy_globals() -> list:
    # numpy 2 moved numpy.core to numpy._core; pickles name the real module.
    core = getattr(np, '_core', None) or np.core
    multiarray = core.multiarray
    # A dtype is rebuilt through its class (numpy.dtypes.Float64DType, ...):
    # allow those of the bool, integer, float and complex types.
    dtype_classes = {type(np.dtype(code)) for code in '?bBhHiIlLqQefdgFDG'}
    return [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar
            ] + sorted(dtype_classes, key=str)


def allow_mmengine_checkpoint_globals() -> None:
    """Register the globals above with ``torch.serialization`` (idempotent).

    No-op on torch without ``add_safe_globals`` (< 2.4), whose default
    ``torch.load`` is not restricted in the first place.
    """
    add = getattr(torch.serialization, 'add_safe_globals', None)
    if add is None:
        return
    add(_numpy_globals() + [HistoryBuffer])
    add([(history_buffer_method, 'builtins.getattr')])


# mmengine logs "Loads checkpoint by {__name__[10:]} backend": keep its names.
def load_from_local(filename: str, map_location=None) -> Any:
    """mmengine's local-path scheme, loaded safely."""
    return load_checkpoint_file(filename, map_location)


def load_from_http(filename: str, map_location=None, **kwargs) -> Any:
    """mmengine's http(s) scheme, loaded safely; as mmengine's, rank 0
    downloads first and the other ranks then read its cached copy."""
    rank, world_size = get_dist_info()
    if rank == 0:
        checkpoint = load_checkpoint_file(filename, map_location)
    if world_size > 1:
        torch.distributed.barrier()
        if rank > 0:
            checkpoint = load_checkpoint_file(filename, map_location)
    return checkpoint


def load_from_ceph(filename: str, map_location=None,
                   backend: str = 'petrel') -> Any:
    """mmengine's object-store scheme (its petrel backend reads ``s3://``
    and ``petrel://`` paths), loaded safely from the bytes it returns."""
    file_backend = get_file_backend(filename,
                                    backend_args={'backend': backend})
    return load_checkpoint_bytes(file_backend.get(filename), filename,
                                 map_location)


_SAFE_SCHEMES = {
    '': load_from_local,
    ('http://', 'https://'): load_from_http,
    # mmengine's own prefixes for load_from_ceph (an optional "name:" first)
    (r'(\S+\:)?s3://', r'(\S+\:)?petrel://'): load_from_ceph,
}


def install_safe_loading() -> None:
    """Allow mmengine's checkpoint globals and route its local, http(s),
    named-model and object-store checkpoint schemes through the safe loader
    (idempotent; ``import gcvit_mm`` calls it)."""
    allow_mmengine_checkpoint_globals()
    for prefixes, loader in _SAFE_SCHEMES.items():
        CheckpointLoader.register_scheme(prefixes, loader, force=True)
    # The named-model schemes turn a name into a URL and then call their
    # module's load_from_http directly, not through CheckpointLoader.
    mmengine_checkpoint.load_from_http = load_from_http
