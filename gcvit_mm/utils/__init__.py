from .config import (config_dicts, load_config, register_config_package,
                     scope_of, typed_dicts)
from .safe_loading import check_named_model_loaders, install_safe_loading
from .user_errors import (UserError, describe, fail, one_line,
                          report_user_errors)

__all__ = [
    'UserError', 'check_named_model_loaders', 'config_dicts', 'describe',
    'fail', 'install_safe_loading', 'load_config', 'one_line',
    'register_config_package', 'report_user_errors', 'scope_of',
    'typed_dicts'
]
