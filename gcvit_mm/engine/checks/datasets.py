"""Do the files a config's datasets and evaluators read exist?

A missing COCO or ADE20K folder otherwise surfaces as a FileNotFoundError
deep in the dataset, after the Runner has logged its environment; here it is
one :class:`UserError` naming the config keys to set.
"""
import os
import os.path as osp
from typing import Iterator, List, Optional, Tuple

from ...utils.user_errors import UserError


def dataset_configs(node, key: str) -> Iterator[Tuple[str, dict]]:
    """(config key, dataset cfg) of the dataset ``node`` and of every
    dataset it wraps (RepeatDataset, ClassBalancedDataset, ConcatDataset,
    ...); only the wrapped ones, not the wrappers."""
    if not isinstance(node, dict):
        return
    if 'dataset' in node:
        yield from dataset_configs(node['dataset'], f'{key}.dataset')
    for i, sub in enumerate(node.get('datasets') or []):
        yield from dataset_configs(sub, f'{key}.datasets.{i}')
    if 'dataset' not in node and 'datasets' not in node:
        yield key, node


def evaluator_metrics(node, section: str) -> Iterator[Tuple[str, dict]]:
    """(config key, metric cfg) of an evaluator section: one metric dict,
    or a list of them (keys ``val_evaluator.0``, ...)."""
    metrics = node if isinstance(node, (list, tuple)) else [node]
    for i, metric in enumerate(metrics):
        if isinstance(metric, dict):
            yield (section if isinstance(node, dict) else
                   f'{section}.{i}'), metric


def registered_class(registry, type_) -> Optional[type]:
    """The class that ``type_`` (a name or a class) names in ``registry``
    under the current default scope (mmdet, mmseg, ...); None if unknown,
    which is left to the runner to report."""
    if not isinstance(type_, str):
        return type_
    try:
        with registry.switch_scope_and_registry(None) as scoped:
            return scoped.get(type_)
    except Exception:  # noqa: BLE001  (unknown: the runner reports it)
        return None


def generates_own_data(dataset_cfg: dict) -> bool:
    """Whether the dataset class creates its files on first use (its class
    attribute ``generates_missing_data``, set by the toy datasets)."""
    from mmengine.registry import DATASETS
    cls = registered_class(DATASETS, dataset_cfg.get('type'))
    return bool(getattr(cls, 'generates_missing_data', False))


def under_root(root: Optional[str], path: str) -> str:
    """``path`` joined to the dataset's ``data_root`` as mmengine's
    BaseDataset joins them (absolute paths and URLs stay as they are)."""
    if not root or osp.isabs(path) or '://' in path:
        return path
    return osp.join(root, path)


def section_configs(cfg, sections: List[str]
                    ) -> Iterator[Tuple[str, dict, bool]]:
    """(config key, cfg, whether it is a metric) of every metric of the
    evaluator sections and every dataset (wrapped ones included) of the
    dataloader sections among ``sections``."""
    for section in sections:
        node = cfg.get(section)
        if not node:
            continue
        if section.endswith('_evaluator'):
            for key, metric in evaluator_metrics(node, section):
                yield key, metric, True
        else:
            for key, ds in dataset_configs(node.get('dataset'),
                                           f'{section}.dataset'):
                yield key, ds, False


def missing_data_paths(cfg, sections: List[str]) -> List[Tuple[str, str]]:
    """(config key, missing local path) for every dataset root, annotation
    file, image/label folder and evaluator annotation file of ``sections``
    (e.g. 'train_dataloader', 'val_evaluator')."""
    items = list(section_configs(cfg, sections))
    # Roots of datasets that create their files: the evaluator annotation
    # files under them appear together with the dataset.
    generated = [osp.normpath(node.get('data_root') or '.')
                 for _, node, is_metric in items
                 if not is_metric and generates_own_data(node)]
    missing = []
    for key, node, is_metric in items:
        if is_metric:
            path = node.get('ann_file')
            if path and '://' not in path and not osp.exists(path) and \
                    not any(osp.normpath(path).startswith(root + os.sep)
                            for root in generated):
                missing.append((f'{key}.ann_file', path))
            continue
        if generates_own_data(node):
            continue
        root = node.get('data_root')
        if root and '://' not in root and not osp.isdir(root):
            missing.append((f'{key}.data_root', root))
            continue
        paths = [('ann_file', node.get('ann_file'))]
        prefix = node.get('data_prefix') or {}
        paths += [(f'data_prefix.{k}', v) for k, v in prefix.items()
                  if isinstance(v, str)]
        for name, rel in paths:
            if not rel:
                continue
            path = under_root(root, rel)
            if '://' not in path and not osp.exists(path):
                missing.append((f'{key}.{name}', path))
    return missing


def check_data_paths(cfg, sections: List[str]) -> None:
    """Raise a one-line :class:`UserError` naming the config keys of
    ``sections`` whose paths do not exist."""
    missing = missing_data_paths(cfg, sections)
    if not missing:
        return
    key, path = missing[0]
    keys = ', '.join(k for k, _ in missing)
    raise UserError(
        f'dataset path not found: {path!r} ({key}). Put the dataset there '
        f'(e.g. ln -s /path/to/dataset {path.rstrip("/")}) or set the '
        f'missing paths in the config: {keys}',
        settings={k: '...' for k, _ in missing})
