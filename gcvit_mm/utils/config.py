"""Reading OpenMMLab configs: one walker over a config tree, loading with
one-line errors, the registry scope, and ``gcvit_mm::`` config bases.

``gcvit_mm::mask_rcnn/gcvit_t_coco.py`` names a config installed with the
package (``gcvit_mm/.mim/configs/...``), as ``mmdet::`` names mmdet's.
mmengine 0.10.7 resolves such a base only for the packages in its table
``mmengine.config.utils.MODULE2PACKAGE``, and while it reads the config,
before the config's ``custom_imports`` run: so the prefix works where
gcvit_mm is imported before the config is read (our tools, ``mim train
gcvit_mm``, a script that imports gcvit_mm), and
:func:`register_config_package` adds gcvit_mm to that table when gcvit_mm is
imported.
"""
import os.path as osp
from typing import Iterator, Optional, Tuple

PACKAGE = 'gcvit_mm'


def config_dicts(node, key: str = '') -> Iterator[Tuple[str, dict]]:
    """(config key, dict) of ``node`` and of every dict below it, through
    dicts and lists, parents before children; keys are dotted paths from
    ``key`` (``model.backbone``, ``param_scheduler.0``)."""
    if isinstance(node, dict):
        yield key, node
        for name, value in node.items():
            yield from config_dicts(value, f'{key}.{name}' if key else name)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from config_dicts(value, f'{key}.{i}' if key else str(i))


def typed_dicts(node, key: str = '') -> Iterator[Tuple[str, dict]]:
    """The dicts of :func:`config_dicts` that name a registered ``type``."""
    return ((k, d) for k, d in config_dicts(node, key) if 'type' in d)


def load_config(path: str, cfg_options: Optional[dict] = None):
    """``Config.fromfile(path)`` merged with ``cfg_options`` (what
    ``--cfg-options`` parsed to).

    Raises:
        UserError: the file does not exist, or mmengine cannot read or merge
            it (a syntax error, an unknown ``_base_``): one line.
    """
    from mmengine.config import Config

    from .user_errors import UserError, one_line
    if not osp.isfile(path):
        raise UserError(f'config file not found: {path}')
    try:
        cfg = Config.fromfile(path)
        if cfg_options is not None:
            cfg.merge_from_dict(cfg_options)
    except Exception as e:  # noqa: BLE001  (any failure is the config's)
        raise UserError(f'cannot load config {path}: {one_line(e)}') from e
    return cfg


def scope_of(cfg) -> str:
    """The config's registry scope ('mmdet', 'mmseg', ...), set by the
    ``mmdet::``/``mmseg::`` default_runtime bases.

    Raises:
        UserError: the config sets no ``default_scope``.
    """
    from .user_errors import UserError
    scope = cfg.get('default_scope')
    if not scope:
        raise UserError('the config sets no `default_scope`; inherit an '
                        "`mmdet::`/`mmseg::` default_runtime base or set "
                        "default_scope = 'mmdet' (or 'mmseg')")
    return scope


def register_config_package() -> bool:
    """Let mmengine resolve ``gcvit_mm::`` config paths, by adding gcvit_mm
    to ``mmengine.config.utils.MODULE2PACKAGE`` (idempotent). Returns
    whether it could: a mmengine without that table (it may change) keeps
    its own error for the prefix, and nothing else is touched."""
    try:
        from mmengine.config import utils
    except ImportError:  # pragma: no cover
        return False
    table = getattr(utils, 'MODULE2PACKAGE', None)
    if not isinstance(table, dict):
        return False
    table.setdefault(PACKAGE, PACKAGE)
    return True


def use_default_scope_for_package_bases(cfg) -> int:
    """Build what a ``gcvit_mm::`` base defines in the config's own scope.

    mmengine marks every registered dict of a ``pkg::`` base with
    ``_scope_='pkg'``, the registry scope of that package. gcvit_mm has no
    registry scope of its own (it registers in mmengine's root registries,
    for mmdet and mmseg alike), so those dicts must be built in the
    config's ``default_scope`` ('mmdet', 'mmseg'): mmengine would otherwise
    fall back to its root registries, which do not know mmdet's datasets or
    metrics. Changes ``cfg`` in place; returns how many dicts it changed."""
    scope = cfg.get('default_scope')
    changed = 0
    nodes = (node for key, value in cfg.items()
             for _, node in config_dicts(value, key))
    for node in nodes:
        if node.get('_scope_') == PACKAGE:
            if scope:
                node['_scope_'] = scope
            else:
                del node['_scope_']
            changed += 1
    return changed
