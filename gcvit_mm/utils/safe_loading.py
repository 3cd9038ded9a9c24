"""Route mmengine's checkpoint loading through gcvit_mm's safe loader.

mmengine 0.10.7 loads checkpoints with plain ``torch.load``: code-running
pickles load on torch < 2.6 (whose default is ``weights_only=False``) and
under ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, while on torch >= 2.6
``--resume`` stops at the first non-tensor global of mmengine's own
checkpoint (its message hub's log history). :func:`install_safe_loading`
routes mmengine's local and http(s) checkpoint schemes (``load_from``,
``--resume``, ``init_detector``, any ``Pretrained`` init) through
:func:`gcvit_mm.checkpoint.load_checkpoint_file`, the named-model schemes
that resolve to a URL (``torchvision://``, ``modelzoo://``,
``open-mmlab://``, ``mmcls://``: mmdet's ResNet and ResNeXt configs use
them) the same way, and the object-store scheme (``s3://``, ``petrel://``)
through :func:`gcvit_mm.checkpoint.load_checkpoint_bytes`: each loads under
:mod:`gcvit_mm.checkpoint.safe_unpickler`'s policy, which lets mmengine's
checkpoints (numpy values, HistoryBuffer) resume on every supported torch.
The allow-list applies to these loads only: other libraries' ``torch.load``
accept what torch lets them. Still on mmengine's plain ``torch.load``:
``pavi://`` (its SDK downloads the file) and ``open-mmlab://`` names that
map to a local file under mmengine's home.
"""
from typing import Any

import torch
from mmengine.dist import get_dist_info
from mmengine.fileio import get_file_backend
from mmengine.runner import checkpoint as mmengine_checkpoint
from mmengine.runner.checkpoint import CheckpointLoader

from ..checkpoint.load import load_checkpoint_bytes, load_checkpoint_file

# mmengine's named-model loaders, which download through their module's
# load_from_http (looked up as a module global when they run).
NAMED_MODEL_LOADERS = ('load_from_torchvision', 'load_from_openmmlab',
                       'load_from_mmcls')


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


def check_named_model_loaders(module=mmengine_checkpoint,
                              names=NAMED_MODEL_LOADERS) -> None:
    """Check that each named-model loader of ``module`` still downloads
    through the module global ``load_from_http`` (as mmengine 0.10.7's do),
    so that replacing that global routes them through the safe loader.

    Raises:
        ImportError: one line naming the loader and the mmengine version
            that reads its URL some other way, whose checkpoints would then
            escape safe loading.
    """
    for name in names:
        loader = getattr(module, name, None)
        if loader is None:
            continue  # a scheme this mmengine does not have
        code = getattr(loader, '__code__', None)
        if (code is None or 'load_from_http' not in code.co_names
                or loader.__globals__ is not vars(module)):
            import mmengine
            raise ImportError(
                f'gcvit_mm cannot make {module.__name__}.{name} load safely '
                f'with mmengine {mmengine.__version__}: it no longer '
                f'downloads through the module\'s load_from_http; install '
                f'the mmengine gcvit_mm supports: pip install mmengine==0.10.7')


def install_safe_loading() -> None:
    """Route mmengine's local, http(s), named-model and object-store
    checkpoint schemes through the safe loader (idempotent; ``import
    gcvit_mm`` calls it).

    Raises:
        ImportError: mmengine's named-model loaders download some other way
            (:func:`check_named_model_loaders`).
    """
    check_named_model_loaders()
    for prefixes, loader in _SAFE_SCHEMES.items():
        CheckpointLoader.register_scheme(prefixes, loader, force=True)
    # The named-model schemes turn a name into a URL and then call their
    # module's load_from_http directly, not through CheckpointLoader.
    mmengine_checkpoint.load_from_http = load_from_http
