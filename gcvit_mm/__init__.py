"""gcvit_mm: the GC ViT backbone for MMDetection 3.x and MMSegmentation 1.x.

Importing the package registers ``GCViT`` in mmengine's root MODELS registry
(visible from the mmdet and mmseg scopes), gcvit_mm's hooks, the
``InputCheckRunner`` runner type and the CPU DDP wrapper; lets mmengine
resolve ``gcvit_mm::`` config paths (the configs installed with the package,
see :mod:`gcvit_mm.utils.config`); lets mmengine resume its own checkpoints
under torch's safe loading, and makes every checkpoint mmengine loads from a
local path, an http(s) URL, ``s3://`` or a named model (``torchvision://``,
``open-mmlab://``, ...) load safely (``weights_only=True``, whatever the
environment says; the exceptions are listed in
:mod:`gcvit_mm.utils.safe_loading`).
"""
from .version import __version__, version_info
from .models import GCViT  # noqa: F401  (registers the backbone)
from .engine import InputCheckRunner  # noqa: F401  (registers the engine)
from .utils import install_safe_loading, register_config_package

install_safe_loading()
register_config_package()

__all__ = ['__version__', 'version_info', 'GCViT']
