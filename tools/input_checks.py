"""Input checks of tools/train.py, tools/test.py and tools/get_flops.py that
go beyond the path checks of tools/common.py (not a public API):

* GC ViT backbone arguments, checked before anything is built (the Runner
  logs a 400-line environment report first);
* COCO annotation files (empty, not JSON, not COCO, no images, no image left
  for the config's classes), checked before the Runner is built;
* an image that cannot be read during the run: one line naming it, from the
  main process or a DataLoader worker.

Each problem is one :class:`common.UserError` (or
:class:`UnreadableImageError`) line that names the file or setting and the
fix.
"""
import inspect
import json
import os
import os.path as osp
import sys
from typing import Dict, Iterator, List, Optional, Tuple

from mmengine.config import Config
from mmengine.dataset import Compose

from common import (UserError, _datasets, _join, evaluator_metrics,  # noqa: E402
                    one_line, registered_class)


# ---------------------------------------------------------------- backbone
def _typed_dicts(node, key: str) -> Iterator[Tuple[str, dict]]:
    """(config key, dict) of every dict with a ``type`` below ``node``."""
    if isinstance(node, dict):
        if 'type' in node:
            yield key, node
        for name, value in node.items():
            yield from _typed_dicts(value, f'{key}.{name}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _typed_dicts(value, f'{key}.{i}')


def check_backbones(cfg: Config) -> None:
    """Raise a one-line :class:`UserError` for a GC ViT config whose
    arguments the constructor would reject (unknown arch, out_indices,
    window_size, frozen_stages, a misspelt argument), using the backbone's
    own checks, before the Runner or the model is built."""
    from mmengine.registry import MODELS

    from gcvit_mm.models import GCViT
    for key, node in _typed_dicts(cfg.get('model'), 'model'):
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


# ---------------------------------------------------- COCO annotation files
def _is_node_leader(launcher: str) -> bool:
    """Whether this is the first process of its node. torchrun sets
    LOCAL_RANK (train.py/test.py set it from --local-rank otherwise); srun
    and mpirun have their own variables."""
    var = {'slurm': 'SLURM_LOCALID',
           'mpi': 'OMPI_COMM_WORLD_LOCAL_RANK'}.get(launcher, 'LOCAL_RANK')
    return int(os.environ.get(var, '0')) == 0


def _names(names: List[str], limit: int = 8) -> str:
    shown = ', '.join(map(str, names[:limit]))
    return shown + (f', ... ({len(names)} in all)'
                    if len(names) > limit else '')


# What mmdet's CocoDataset and pycocotools read from every image and
# annotation (a missing one is a KeyError deep in the dataset).
IMAGE_KEYS = ('id', 'file_name', 'width', 'height')
ANN_KEYS = ('image_id', 'category_id', 'bbox', 'area')


def _summarize_coco(path: str, key: str) -> dict:
    """Parse a COCO annotation file and keep what the checks need: category
    names, the shorter side of every image and the images of every
    category. ``key`` (the config key) only names the setting in errors."""
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
    category_images: Dict[int, set] = {}
    for ann in data.get('annotations') or []:
        category_images.setdefault(ann['category_id'], set()).add(
            ann['image_id'])
    return dict(
        categories={c['id']: c['name'] for c in data['categories']},
        short_side={im['id']: min(im['width'], im['height'])
                    for im in data['images']},
        category_images=category_images)


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


def _coco_files(cfg: Config, sections: List[str]):
    """(config key of the dataset or evaluator, annotation file, dataset cfg
    and class or None) of every COCO-style dataset (its class derives from
    mmdet's CocoDataset) and CocoMetric evaluator in ``sections``."""
    from mmengine.registry import DATASETS, METRICS

    # A class can derive from mmdet's only if mmdet is imported already
    # (the registry imported it to resolve the type); no import otherwise.
    def derives(cls, module: str, name: str) -> bool:
        base = getattr(sys.modules.get(module), name, None)
        return (base is not None and inspect.isclass(cls)
                and issubclass(cls, base))

    for section in sections:
        node = cfg.get(section)
        if not node:
            continue
        if section.endswith('_evaluator'):
            for key, metric in evaluator_metrics(node, section):
                cls = registered_class(METRICS, metric.get('type'))
                path = metric.get('ann_file')
                if path and derives(
                        cls, 'mmdet.evaluation.metrics.coco_metric',
                        'CocoMetric'):
                    yield key, path, None, None
            continue
        for key, ds in _datasets(node.get('dataset'), f'{section}.dataset'):
            cls = registered_class(DATASETS, ds.get('type'))
            if ds.get('ann_file') and derives(cls, 'mmdet.datasets.coco',
                                              'CocoDataset'):
                yield key, _join(ds.get('data_root'), ds['ann_file']), ds, cls


def check_annotation_files(cfg: Config, sections: List[str],
                           launcher: str = 'none') -> None:
    """Raise a one-line :class:`UserError` when an annotation file of a
    COCO-style dataset or CocoMetric evaluator in ``sections`` is empty, not
    JSON, not COCO, lists no images, or leaves no usable image for the
    config's classes (unchecked, the dataset fails with a traceback such as
    "need at least one array to concatenate").

    Cost: real COCO train annotations are 450 MB, parsed again by every
    process's dataset. Here each file is parsed once (the evaluator usually
    reads the dataset's file) and only by the first process of each node,
    which reads the same files as the others: when it exits 1, torchrun
    stops them while they wait for it in the process group's first
    collective (on CPU, where the tools set up the group earlier, they may
    print "Connection closed by peer" first)."""
    if not _is_node_leader(launcher):
        return
    summaries: Dict[str, dict] = {}
    for key, path, ds, cls in _coco_files(cfg, sections):
        # Missing files are check_data_paths' business, or are generated
        # (the toy datasets); remote ones are read by the backend.
        if '://' in path or not osp.isfile(path):
            continue
        real = osp.realpath(path)
        if real not in summaries:
            summaries[real] = _summarize_coco(path, f'{key}.ann_file')
        if ds is not None:
            _check_classes(summaries[real], path, key, ds, cls)


# -------------------------------------------------- unreadable images
class UnreadableImageError(Exception):
    """An image of a dataset that cannot be read, reported on one line.

    Raised in a DataLoader worker, it reaches the main process as
    ``UnreadableImageError(text)``, torch's re-creation from the worker's
    formatted traceback, whose last line is ``<module>.<name>: <our line>``:
    the constructor recovers our line from it and keeps the worker's
    traceback as a note (shown with GCVIT_MM_TRACEBACK=1)."""

    def __init__(self, text: str):
        super().__init__(text)
        prefix = f'{type(self).__module__}.{type(self).__qualname__}: '
        lines = [line for line in text.splitlines() if line.strip()]
        last = lines[-1] if lines else text
        self.line = last[len(prefix):] if last.startswith(prefix) else text
        if self.line != text:
            self.add_note(text)

    def __str__(self) -> str:
        return self.line


class _ReportingCompose(Compose):
    """The dataset's pipeline, which turns a failure to read a sample's
    image into an :class:`UnreadableImageError` naming the file."""

    def __init__(self, transforms, key: str, ann_file: Optional[str],
                 then: str):
        super().__init__(transforms)
        self.key, self.ann_file, self.then = key, ann_file, then

    def __call__(self, data: dict) -> Optional[dict]:
        for transform in self.transforms:
            try:
                data = transform(data)
            except Exception as e:
                # Until the image is in the results, reading it is the only
                # thing a transform can fail at: that failure is the data's,
                # anything later keeps its traceback.
                if isinstance(data, dict) and 'img' not in data and \
                        data.get('img_path'):
                    where = (f'remove it from {self.ann_file!r}'
                             if self.ann_file else 'remove it')
                    raise UnreadableImageError(
                        f'cannot read image {data["img_path"]!r} of '
                        f'{self.key} ({one_line(e)}); {where} or replace '
                        f'it with a valid image{self.then}') from e
                raise
            if data is None:  # as Compose: the dataset picks another sample
                return None
        return data


def _report_unreadable_images(dataset, key: str, then: str) -> None:
    """Wrap the pipelines of ``dataset`` and the datasets it wraps."""
    for i, sub in enumerate(getattr(dataset, 'datasets', None) or []):
        _report_unreadable_images(sub, f'{key}.datasets.{i}', then)
    if getattr(dataset, 'dataset', None) is not None:
        _report_unreadable_images(dataset.dataset, f'{key}.dataset', then)
    pipeline = getattr(dataset, 'pipeline', None)
    if type(pipeline) is Compose:  # not yet wrapped, nor a custom one
        dataset.pipeline = _ReportingCompose(
            pipeline.transforms, key, getattr(dataset, 'ann_file', None),
            then)


def report_unreadable_images(runner, cfg: Config, sections: List[str],
                             then: str = '') -> None:
    """Make the datasets that ``runner`` builds report an image that cannot
    be read as one :class:`UnreadableImageError` line naming it and its
    config key (the first of ``sections``, e.g. 'val_dataloader', whose
    settings built it); ``then`` says what to do once it is fixed.

    Loops build their DataLoader through ``runner.build_dataloader`` and may
    start its workers at once (IterBasedTrainLoop does), before any hook
    runs: wrapping the pipeline as the dataset comes out of it is the one
    point before a worker copies the dataset, and it leaves the config (and
    its dump in work_dir) as written."""
    build = runner.build_dataloader
    then = f', then {then}' if then else ''

    def build_dataloader(dataloader, *args, **kwargs):
        loader = build(dataloader, *args, **kwargs)
        key = next((f'{section}.dataset' for section in sections
                    if cfg.get(section) == dataloader), 'a dataset')
        _report_unreadable_images(getattr(loader, 'dataset', None), key,
                                  then)
        return loader

    runner.build_dataloader = build_dataloader
