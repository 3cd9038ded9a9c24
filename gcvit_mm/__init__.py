"""gcvit_mm: the GC ViT backbone for MMDetection 3.x and MMSegmentation 1.x.

Importing the package checks the Python (3.8 to 3.12) and torch (>= 2.0)
versions (an ImportError in one line otherwise), registers ``GCViT`` in
mmengine's root MODELS registry (visible from the mmdet and mmseg scopes),
gcvit_mm's hooks, the ``InputCheckRunner`` runner type and the CPU DDP
wrapper; lets mmengine resolve ``gcvit_mm::`` config paths (the configs
installed with the package, see :mod:`gcvit_mm.utils.config`); and makes
every checkpoint mmengine loads from a local path, an http(s) URL, ``s3://``
or a named model (``torchvision://``, ``open-mmlab://``, ...) load safely:
tensors and mmengine's own checkpoint contents only, whatever the
environment says (:mod:`gcvit_mm.checkpoint.safe_unpickler`; the exceptions
are listed in :mod:`gcvit_mm.utils.safe_loading`).
"""
from .supported import check_python, check_torch

check_python()
import torch  # noqa: E402

check_torch(torch.__version__)

from .version import __version__, version_info  # noqa: E402
from .models import GCViT  # noqa: E402,F401  (registers the backbone)
from .engine import InputCheckRunner  # noqa: E402,F401  (the engine)
from .utils import install_safe_loading, register_config_package  # noqa: E402

install_safe_loading()
register_config_package()

__all__ = ['__version__', 'version_info', 'GCViT']
