"""gcvit_mm: the GC ViT backbone for MMDetection 3.x and MMSegmentation 1.x.

Importing the package registers ``GCViT`` in mmengine's root MODELS registry
(visible from the mmdet and mmseg scopes), lets mmengine resume its own
checkpoints under torch's safe loading, and makes every checkpoint mmengine
loads from a local path, an http(s) URL, ``s3://`` or a named model
(``torchvision://``, ``open-mmlab://``, ...) load safely
(``weights_only=True``, whatever the environment says; the exceptions are
listed in :mod:`gcvit_mm.utils.safe_loading`).
"""
from .version import __version__, version_info
from .models import GCViT  # noqa: F401  (registers the backbone)
from .engine import AtomicCheckpointHook  # noqa: F401  (registers the hook)
from .utils import install_safe_loading

install_safe_loading()

__all__ = ['__version__', 'version_info', 'GCViT']
