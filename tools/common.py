"""Helpers shared by tools/train.py and tools/test.py (not a public API).

Everything here works for any OpenMMLab 2.x config (mmdet, mmseg, ...): the
scope comes from the config's ``default_scope``.
"""
import os
import os.path as osp
import re
import sys
import traceback
import zipfile
from typing import Iterator, List, Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import print_log

# Also routes mmengine's checkpoint loading through the safe loader.
from gcvit_mm.checkpoint import (CheckpointError, foreign_backbone_format,
                                 load_checkpoint_file)

TRACEBACK_ENV = 'GCVIT_MM_TRACEBACK'


class UserError(Exception):
    """An error in the user's input (config, paths, checkpoint) that is
    reported as a single ``error: ...`` line."""


# Errors whose type says they are about the user's input, wherever raised.
INPUT_ERRORS = (UserError, CheckpointError)


def one_line(exc: BaseException) -> str:
    """Exception message on one line, without mmengine's registry prefixes
    (``class `MaskRCNN` in /path/two_stage.py: ...``)."""
    msg = ' '.join(line.strip() for line in str(exc).splitlines()
                   if line.strip())
    msg = re.sub(r'class `\w+` in [^:]+\.py: ', '', msg)
    if not msg:
        msg = type(exc).__name__
    return msg if len(msg) <= 600 else msg[:597] + '...'


def fail(msg: str) -> None:
    """Print ``error: msg`` to stderr and exit 1 (no traceback)."""
    print(f'error: {msg}', file=sys.stderr, flush=True)
    sys.exit(1)


def log(msg: str) -> None:
    """Log once per job (rank 0) before the runner's logger exists."""
    if int(os.environ.get('RANK', '0')) == 0:
        print_log(msg, logger='current')


def user_errors(action: str, exc_types: Tuple[type, ...] = (Exception, ),
                only_from: Optional[Tuple[str, ...]] = None):
    """Context manager: exceptions of ``exc_types`` (optionally only those
    raised below a function named in ``only_from``) become one ``error:``
    line; ``GCVIT_MM_TRACEBACK=1`` shows the traceback instead."""
    return _UserErrors(action, exc_types, only_from)


class _UserErrors:

    def __init__(self, action, exc_types, only_from):
        self.action, self.exc_types, self.only_from = (action, exc_types,
                                                       only_from)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None or isinstance(exc, (SystemExit, KeyboardInterrupt)):
            return False
        if os.environ.get(TRACEBACK_ENV, '0') not in ('', '0'):
            return False
        if not isinstance(exc, self.exc_types + INPUT_ERRORS):
            return False
        if self.only_from is not None and not isinstance(exc, INPUT_ERRORS):
            names = {frame.name for frame in traceback.extract_tb(tb)}
            if not names & set(self.only_from):
                return False
        fail(f'{self.action}: {one_line(exc)} '
             f'(set {TRACEBACK_ENV}=1 for the traceback)')


def load_config(path: str, cfg_options: Optional[dict]) -> Config:
    """``Config.fromfile`` + ``--cfg-options``; one-line errors."""
    if not osp.isfile(path):
        raise UserError(f'config file not found: {path}')
    with user_errors(f'cannot load config {path}'):
        cfg = Config.fromfile(path)
        if cfg_options is not None:
            cfg.merge_from_dict(cfg_options)
    return cfg


def scope_of(cfg: Config) -> str:
    """The config's registry scope ('mmdet', 'mmseg', ...), set by the
    ``mmdet::``/``mmseg::`` default_runtime bases."""
    scope = cfg.get('default_scope')
    if not scope:
        raise UserError('the config sets no `default_scope`; inherit an '
                        "`mmdet::`/`mmseg::` default_runtime base or add "
                        "default_scope = 'mmdet' (or 'mmseg')")
    return scope


# --------------------------------------------------------------------- CPU
def _replace_type(node, old: str, new: str) -> int:
    count = 0
    if isinstance(node, dict):
        if node.get('type') == old:
            node['type'] = new
            count += 1
        for value in node.values():
            count += _replace_type(value, old, new)
    elif isinstance(node, (list, tuple)):
        for value in node:
            count += _replace_type(value, old, new)
    return count


def _register_cpu_ddp() -> None:
    from mmengine.model import MMDistributedDataParallel
    from mmengine.registry import MODEL_WRAPPERS
    if 'CPUDistributedDataParallel' in MODEL_WRAPPERS.module_dict:
        return

    @MODEL_WRAPPERS.register_module()
    class CPUDistributedDataParallel(MMDistributedDataParallel):
        """mmengine's DDP wrapper for CPU modules (no device_ids)."""

        def __init__(self, module, device_ids=None, **kwargs):
            super().__init__(module=module, device_ids=None, **kwargs)


def adapt_to_device(cfg: Config, launcher: str) -> None:
    """Without CUDA: SyncBN -> BN, gloo instead of nccl, and fp32 instead of
    AMP (mmengine's AmpOptimWrapper needs a GPU), each with a log line."""
    if torch.cuda.is_available():
        return
    n = _replace_type(cfg.model, 'SyncBN', 'BN')
    if n:
        log(f'No CUDA: {n} SyncBN layer config(s) reverted to BN.')
    if launcher != 'none':
        dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
        if dist_cfg.get('backend', 'nccl') == 'nccl':
            dist_cfg['backend'] = 'gloo'
            log('No CUDA: distributed backend set to gloo.')
        if cfg.get('model_wrapper_cfg') is None:
            # mmengine's default DDP wrapper passes device_ids=[LOCAL_RANK],
            # which DDP rejects for a CPU module.
            _register_cpu_ddp()
            cfg.model_wrapper_cfg = dict(
                type='CPUDistributedDataParallel',
                broadcast_buffers=False,
                find_unused_parameters=cfg.get('find_unused_parameters',
                                               False))
    optim_wrapper = cfg.get('optim_wrapper')
    if optim_wrapper and optim_wrapper.get('type') == 'AmpOptimWrapper':
        optim_wrapper['type'] = 'OptimWrapper'
        for key in ('loss_scale', 'dtype', 'use_fsdp'):
            optim_wrapper.pop(key, None)
        log('No CUDA: AMP needs a GPU; training in fp32 (OptimWrapper).')


def start_cpu_process_group(cfg: Config, launcher: str) -> None:
    """torchrun on a machine without CUDA: join the gloo process group here,
    because mmengine's init_dist calls torch.cuda.set_device, which a CPU
    build of torch lacks (the Runner skips init_dist when the group exists).

    Call it after the input checks: a rank whose check fails then exits
    before the others wait for it, and torchrun stops them quietly, instead
    of each printing a misleading "connection closed by peer" error."""
    if torch.cuda.is_available() or launcher != 'pytorch':
        return
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend=cfg.env_cfg.dist_cfg.backend)


# ------------------------------------------------------------ data checks
def _datasets(node, key: str) -> Iterator[Tuple[str, dict]]:
    """(config key, dataset cfg) of a dataset and any datasets it wraps
    (RepeatDataset, ClassBalancedDataset, ConcatDataset, ...)."""
    if not isinstance(node, dict):
        return
    if 'dataset' in node:
        yield from _datasets(node['dataset'], f'{key}.dataset')
    if 'datasets' in node:
        for i, sub in enumerate(node['datasets']):
            yield from _datasets(sub, f'{key}.datasets.{i}')
    if 'dataset' not in node and 'datasets' not in node:
        yield key, node


def registered_class(registry, type_) -> Optional[type]:
    """The class that ``type_`` (a name or a class) names in ``registry``
    under the current default scope (mmdet, mmseg, ...); None if unknown,
    which is left to the runner to report."""
    if not isinstance(type_, str):
        return type_
    try:
        with registry.switch_scope_and_registry(None) as scoped:
            return scoped.get(type_)
    except Exception:
        return None


def evaluator_metrics(node, section: str) -> Iterator[Tuple[str, dict]]:
    """(config key, metric cfg) of an evaluator section: one metric dict,
    or a list of them (keys ``val_evaluator.0``, ...)."""
    metrics = node if isinstance(node, (list, tuple)) else [node]
    for i, metric in enumerate(metrics):
        if isinstance(metric, dict):
            yield (section if isinstance(node, dict) else
                   f'{section}.{i}'), metric


def _generates_own_data(dataset_cfg: dict) -> bool:
    """Dataset classes with ``generates_missing_data = True`` (the embedded
    toy datasets) create their files on first use."""
    from mmengine.registry import DATASETS
    cls = registered_class(DATASETS, dataset_cfg.get('type'))
    return bool(getattr(cls, 'generates_missing_data', False))


def _join(root: Optional[str], path: str) -> str:
    if not root or osp.isabs(path) or '://' in path:
        return path
    return osp.join(root, path)


def missing_data_paths(cfg: Config,
                       sections: List[str]) -> List[Tuple[str, str]]:
    """(config key, missing local path) for every dataset root, annotation
    file, image/label folder and evaluator annotation file of ``sections``
    (e.g. 'train_dataloader', 'val_evaluator')."""
    missing = []
    # Roots of datasets that generate their own files: evaluator annotation
    # files under them appear together with the dataset.
    generated_roots = []
    for section in sections:
        node = cfg.get(section)
        if section.endswith('_dataloader') and node:
            generated_roots += [
                osp.normpath(ds.get('data_root') or '.')
                for _, ds in _datasets(node.get('dataset'), section)
                if _generates_own_data(ds)
            ]
    for section in sections:
        node = cfg.get(section)
        if not node:
            continue
        if section.endswith('_evaluator'):
            for key, metric in evaluator_metrics(node, section):
                path = metric.get('ann_file')
                if not path or '://' in path or osp.exists(path) or any(
                        osp.normpath(path).startswith(root + os.sep)
                        for root in generated_roots):
                    continue
                missing.append((f'{key}.ann_file', path))
            continue
        for key, ds in _datasets(node.get('dataset'), f'{section}.dataset'):
            if _generates_own_data(ds):
                continue
            root = ds.get('data_root')
            if root and '://' not in root and not osp.isdir(root):
                missing.append((f'{key}.data_root', root))
                continue
            paths = [('ann_file', ds.get('ann_file'))]
            prefix = ds.get('data_prefix') or {}
            paths += [(f'data_prefix.{k}', v) for k, v in prefix.items()
                      if isinstance(v, str)]
            for name, rel in paths:
                if not rel:
                    continue
                path = _join(root, rel)
                if '://' not in path and not osp.exists(path):
                    missing.append((f'{key}.{name}', path))
    return missing


def check_data_paths(cfg: Config, sections: List[str]) -> None:
    """Raise a one-line :class:`UserError` naming the config keys whose
    paths do not exist."""
    with user_errors('cannot check dataset paths'):
        missing = missing_data_paths(cfg, sections)
    if not missing:
        return
    key, path = missing[0]
    fixes = ' '.join(f'{k}=...' for k, _ in missing)
    raise UserError(
        f'dataset path not found: {path!r} ({key}). Put the dataset there '
        f'(e.g. ln -s /path/to/dataset {path.rstrip("/")}) or override the '
        f'missing paths: --cfg-options {fixes}')


# ------------------------------------------------------------ checkpoints
def check_checkpoint_file(path: Optional[str], what: str) -> None:
    """A local checkpoint must exist and be a complete torch file (zip
    archive with its pickle, or a legacy pickle that the safe loader
    loads)."""
    if not path or '://' in path or path == 'auto':
        return
    if not osp.isfile(path):
        raise UserError(f'{what} not found: {path!r}')
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise UserError(f'{what} {path!r} is corrupt: {e}') from None
        if any(name.endswith('data.pkl') for name in names):
            return
        raise UserError(f'{what} {path!r} is a zip file but not a torch '
                        f'checkpoint (no data.pkl)')
    # Not a zip: a legacy torch.save file or a broken/truncated one.
    try:
        with open(path, 'rb') as f:
            magic = f.read(2)
    except OSError as e:
        raise UserError(f'cannot read {what} {path!r}: {e}') from None
    if magic[:1] != b'\x80':  # every pickle protocol >= 2 starts with 0x80
        raise UserError(f'{what} {path!r} is corrupt or not a torch '
                        f'checkpoint (truncated download?); re-download or '
                        f're-save it')
    try:
        load_checkpoint_file(path)
    except CheckpointError as e:
        raise UserError(f'{what}: {e}') from None


def pretrained_checkpoints(cfg: Config) -> Iterator[str]:
    """``init_cfg.checkpoint`` values of type Pretrained in the model."""
    stack = [cfg.get('model', {})]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            init = node.get('init_cfg')
            if isinstance(init, dict) and init.get('type') == 'Pretrained' \
                    and isinstance(init.get('checkpoint'), str):
                yield init['checkpoint']
            stack.extend(node.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)


def weights_not_covered(model: torch.nn.Module, checkpoint: dict
                        ) -> Tuple[List[str], List[str], int]:
    """(missing, other shape, total): the keys of the model's state_dict
    that the checkpoint lacks, those whose shape differs, and how many keys
    the model has, after the key revision of mmengine's
    Runner.load_checkpoint (``^module.`` stripped). As mmengine's
    load_state_dict: wrappers and test-time augmentation models load into
    their ``.module``; BN's ``num_batches_tracked`` does not count."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    state = checkpoint.get('state_dict', checkpoint)
    present = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    expected = {k: v for k, v in model.state_dict().items()
                if not k.endswith('num_batches_tracked')}
    missing = [k for k in expected if k not in present]
    other_shape = [k for k, v in expected.items() if k in present and
                   getattr(present[k], 'shape', v.shape) != v.shape]
    return missing, other_shape, len(expected)


class RequireFullCheckpoint(Hook):
    """Refuse (UserError) a loaded checkpoint that does not give every weight
    of the model: evaluating random weights is never what was meant. Runs
    last among the ``after_load_checkpoint`` hooks, i.e. on the checkpoint
    as it goes into the model."""

    priority = 'VERY_LOW'

    def __init__(self, path: str):
        self.path = path

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        fmt = foreign_backbone_format(checkpoint.get('state_dict', checkpoint))
        if fmt:  # e.g. a detector trained with the paper's code
            raise UserError(
                f'checkpoint {self.path!r} holds a GC ViT backbone in the '
                f"{fmt}'s layout; convert it first: python "
                f'tools/convert_checkpoint.py {self.path} converted.pth, '
                f'then test converted.pth')
        missing, other_shape, total = weights_not_covered(
            runner.model, checkpoint)
        for keys, problem in ((missing, 'lacks'),
                              (other_shape, 'has another shape for')):
            if keys:
                raise UserError(
                    f'checkpoint {self.path!r} {problem} {len(keys)} of the '
                    f"model's {total} weights (e.g. {', '.join(keys[:3])}): "
                    f'is it a checkpoint of this config? Test with the '
                    f'checkpoint that training this config wrote (its '
                    f'work_dir/*.pth)')


# mmengine's functions below which an exception is about a checkpoint file
# (gcvit_mm's own loader raises CheckpointError, caught by its type).
CHECKPOINT_FUNCS = ('load_checkpoint', 'resume', 'load_or_resume',
                    '_load_checkpoint', 'init_weights')
