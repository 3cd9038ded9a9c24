from .safe_loading import (allow_mmengine_checkpoint_globals,
                           install_safe_loading)

__all__ = ['allow_mmengine_checkpoint_globals', 'install_safe_loading']
