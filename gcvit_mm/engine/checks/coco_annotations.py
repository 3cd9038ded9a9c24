"""Are a config's COCO annotation files usable?

An empty, truncated or non-COCO annotation file, or one in which no image
keeps an annotation of the config's classes, otherwise fails deep in mmdet's
CocoDataset (e.g. "need at least one array to concatenate") after the Runner
has logged its environment. Here it is one :class:`UserError` naming the
file, the config key and the fix.
"""
import inspect
import json
import os.path as osp
import sys
from typing import Dict, Iterator, List, Optional, Tuple

from ...utils.user_errors import UserError
from .datasets import registered_class, section_configs, under_root

# What mmdet's CocoDataset and pycocotools read from every image and
# annotation (a missing one is a KeyError deep in the dataset).
IMAGE_KEYS = ('id', 'file_name', 'width', 'height')
ANN_KEYS = ('image_id', 'category_id', 'bbox', 'area')

# Summaries of the files parsed in this process, by (real path, size,
# mtime): the tools check before the Runner is built and the Runner checks
# again when it builds a loop, and a real COCO train file is 450 MB.
_SUMMARIES: Dict[Tuple[str, int, int], dict] = {}


def _names(names: List[str], limit: int = 8) -> str:
    shown = ', '.join(map(str, names[:limit]))
    return shown + (f', ... ({len(names)} in all)'
                    if len(names) > limit else '')


def _read_coco(path: str, key: str) -> dict:
    """The parsed file; one-line errors for what is not COCO JSON."""
    where = f'annotation file {path!r} ({key})'
    fix = (f'regenerate or re-download it, or set {key} to a COCO-format '
           f'JSON file')
    if osp.getsize(path) == 0:
        raise UserError(f'{where} is empty; {fix}')
    with open(path, 'rb') as f:
        try:
            data = json.load(f)
        except json.JSONDecodeError as e:
            if not e.doc.strip():
                raise UserError(f'{where} is empty; {fix}') from None
            raise UserError(f'{where} is not valid JSON ({e.msg} at line '
                            f'{e.lineno} column {e.colno}; truncated '
                            f'download?); {fix}') from None
        except ValueError:  # not UTF-8 text: a binary file
            raise UserError(f'{where} is not JSON text; {fix}') from None
    if not isinstance(data, dict):
        raise UserError(f'{where} is JSON but not a COCO annotation file (a '
                        f'{type(data).__name__}, not an object with images, '
                        f'annotations and categories); {fix}')
    for name in ('images', 'categories'):
        if not isinstance(data.get(name), list):
            raise UserError(
                f'{where} is not a COCO annotation file: it has no {name!r} '
                f'list (its keys: {_names(sorted(map(str, data)))}); {fix}')
    if not data['images']:
        raise UserError(f'{where} lists no images; {fix}')
    if not data['categories']:
        raise UserError(f'{where} lists no categories; {fix}')
    for name, keys in (('images', IMAGE_KEYS), ('annotations', ANN_KEYS),
                       ('categories', ('id', 'name'))):
        for i, item in enumerate(data.get(name) or []):
            missing = [k for k in keys
                       if not isinstance(item, dict) or k not in item]
            if missing:
                raise UserError(f'{where}: {name}[{i}] has no '
                                f'{_names(missing)} (each needs '
                                f'{", ".join(keys)}); {fix}')
    return data


def summarize_coco(path: str, key: str) -> dict:
    """What the checks need from a COCO annotation file: category names,
    the shorter side of every image and the images of every category.
    Parsed once per process and file version. ``key`` (the config key)
    only names the setting in errors.

    Raises:
        UserError: the file is empty, not JSON, not COCO, or lists no
            images or no categories.
    """
    stat = osp.getsize(path), osp.getmtime(path)
    cache_key = (osp.realpath(path), stat[0], int(stat[1] * 1e9))
    if cache_key not in _SUMMARIES:
        data = _read_coco(path, key)
        category_images: Dict[int, set] = {}
        for ann in data.get('annotations') or []:
            category_images.setdefault(ann['category_id'], set()).add(
                ann['image_id'])
        _SUMMARIES[cache_key] = dict(
            categories={c['id']: c['name'] for c in data['categories']},
            short_side={im['id']: min(im['width'], im['height'])
                        for im in data['images']},
            category_images=category_images)
    return _SUMMARIES[cache_key]


def _check_classes(summary: dict, path: str, key: str, ds: dict,
                   cls: type) -> None:
    """The config's classes must name categories of the file, and a
    training set that drops images without annotations
    (filter_cfg.filter_empty_gt) must keep at least one, as mmdet's
    CocoDataset.filter_data decides."""
    classes = (ds.get('metainfo') or {}).get('classes') or getattr(
        cls, 'METAINFO', {}).get('classes')
    if not isinstance(classes, (list, tuple)) or not classes:
        return
    categories = summary['categories']
    cat_ids = [cid for cid, name in categories.items() if name in classes]
    if not cat_ids:
        raise UserError(
            f'none of the {len(classes)} classes of {key} '
            f'({_names(list(classes))}) is a category of {path!r} (its '
            f'categories: {_names(list(categories.values()))}); set '
            f'{key}.metainfo=dict(classes=(...)) to names from the file, or '
            f'use the annotation file of these classes')
    filter_cfg = ds.get('filter_cfg') or {}
    if ds.get('test_mode', False) or not filter_cfg.get('filter_empty_gt'):
        return
    min_size = filter_cfg.get('min_size', 0)
    kept = set()
    for cid in cat_ids:
        kept |= summary['category_images'].get(cid, set())
    if not any(summary['short_side'].get(i, -1) >= min_size for i in kept):
        raise UserError(
            f'no image of {path!r} ({key}.ann_file) has an annotation of the '
            f'classes {_names(list(classes))}'
            + (f' and sides >= filter_cfg.min_size={min_size}'
               if min_size else '')
            + ', so filter_cfg.filter_empty_gt=True leaves no training '
            'image; add annotations to the file or use the annotation file '
            'of these classes')


def _derives(cls, module: str, name: str) -> bool:
    """Whether ``cls`` derives from ``module.name``. A class can derive from
    mmdet's only if mmdet is imported already (the registry imported it to
    resolve the type): no import here otherwise."""
    base = getattr(sys.modules.get(module), name, None)
    return (base is not None and inspect.isclass(cls)
            and issubclass(cls, base))


def coco_annotation_files(
        cfg, sections: List[str]
) -> Iterator[Tuple[str, str, Optional[dict], Optional[type]]]:
    """(config key of the dataset or evaluator, annotation file, dataset
    cfg and class or None) of every COCO-style dataset (its class derives
    from mmdet's CocoDataset) and CocoMetric evaluator in ``sections``."""
    from mmengine.registry import DATASETS, METRICS
    for key, node, is_metric in section_configs(cfg, sections):
        if is_metric:
            cls = registered_class(METRICS, node.get('type'))
            if node.get('ann_file') and _derives(
                    cls, 'mmdet.evaluation.metrics.coco_metric', 'CocoMetric'):
                yield key, node['ann_file'], None, None
            continue
        cls = registered_class(DATASETS, node.get('type'))
        if node.get('ann_file') and _derives(cls, 'mmdet.datasets.coco',
                                             'CocoDataset'):
            yield (key, under_root(node.get('data_root'), node['ann_file']),
                   node, cls)


def check_annotation_files(cfg, sections: List[str]) -> None:
    """Raise a one-line :class:`UserError` when an annotation file of a
    COCO-style dataset or CocoMetric evaluator in ``sections`` is empty, not
    JSON, not COCO, lists no images, or leaves no usable image for the
    config's classes. Missing files are left to
    :func:`~.datasets.check_data_paths` (or are generated by the toy
    datasets); remote ones are read by their file backend."""
    for key, path, ds, cls in coco_annotation_files(cfg, sections):
        if '://' in path or not osp.isfile(path):
            continue
        summary = summarize_coco(path, f'{key}.ann_file')
        if ds is not None:
            _check_classes(summary, path, key, ds, cls)
