from .safe_loading import check_named_model_loaders, install_safe_loading

__all__ = ['check_named_model_loaders', 'install_safe_loading']
