"""GC ViT backbone arguments, checked from the config before anything is
built (the Runner logs a 400-line environment report first, and a 300 M
parameter detector takes a while to build)."""
import inspect

from ...utils.config import typed_dicts
from ...utils.user_errors import UserError, one_line
from .datasets import registered_class


def check_backbones(cfg) -> None:
    """Raise a one-line :class:`UserError` for a GCViT dict of ``cfg.model``
    whose arguments the constructor would reject (unknown arch, out_indices,
    window_size, frozen_stages, a misspelt argument), with the backbone's
    own checks (``GCViT.check_args``)."""
    from mmengine.registry import MODELS

    from ...models import GCViT
    for key, node in typed_dicts(cfg.get('model'), 'model'):
        cls = registered_class(MODELS, node['type'])
        if not (inspect.isclass(cls) and issubclass(cls, GCViT)):
            continue
        try:
            # type and _scope_ are the registry's, not the constructor's
            args = inspect.signature(cls).bind(**{
                k: v for k, v in node.items() if k not in ('type', '_scope_')})
            args.apply_defaults()
            cls.check_args(*(args.arguments[name] for name in (
                'arch', 'window_size', 'out_indices', 'frozen_stages')))
        except (TypeError, ValueError) as e:
            raise UserError(f'bad {cls.__name__} backbone config ({key}): '
                            f'{one_line(e)}') from None
