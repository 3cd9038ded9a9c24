"""Checkpoints named by a config: are the files complete torch checkpoints,
and does a loaded checkpoint give every weight of the model?"""
import os.path as osp
import re
import zipfile
from typing import Iterator, List, Optional, Tuple

import torch

from ...checkpoint import CheckpointError, load_checkpoint_file
from ...utils.config import typed_dicts
from ...utils.user_errors import UserError
from ..checkpoint_files import checkpoint_problem


def check_checkpoint_file(path: Optional[str], what: str) -> None:
    """Raise a one-line :class:`UserError` unless the local checkpoint
    ``path`` exists and is a complete torch file: a zip archive whose
    directory and pickle are intact, or a legacy pickle that the safe
    loader loads. URLs, ``auto`` and None are left to the loader.
    ``what`` names the setting ('resume checkpoint', ...)."""
    if not path or '://' in path or path == 'auto':
        return
    if not osp.isfile(path):
        raise UserError(f'{what} not found: {path!r}')
    if zipfile.is_zipfile(path):
        problem = checkpoint_problem(path)
        if problem is not None:
            raise UserError(f'{what} {path!r} {problem}; re-download or '
                            f're-save it')
        return
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


def pretrained_checkpoints(model_cfg) -> Iterator[Tuple[str, str]]:
    """(config key, checkpoint) of every ``init_cfg`` of type Pretrained in
    a model config (keys from ``model``)."""
    for key, node in typed_dicts(model_cfg, 'model'):
        if node['type'] == 'Pretrained' and isinstance(
                node.get('checkpoint'), str):
            yield f'{key}.checkpoint', node['checkpoint']


def check_config_checkpoints(cfg) -> None:
    """:func:`check_checkpoint_file` for ``load_from`` (the checkpoint to
    resume from when ``resume`` is set) and every pretrained ``init_cfg``
    checkpoint of ``cfg.model``."""
    check_checkpoint_file(cfg.get('load_from'),
                          'resume checkpoint' if cfg.get('resume') else
                          'load_from checkpoint')
    for key, path in pretrained_checkpoints(cfg.get('model')):
        check_checkpoint_file(path, f'pretrained checkpoint ({key})')


def weights_not_covered(model: torch.nn.Module, checkpoint: dict
                        ) -> Tuple[List[str], List[str], int]:
    """(missing, other shape, total): the keys of the model's state_dict
    that the checkpoint lacks, those whose shape differs, and how many keys
    the model has, after the key revision of mmengine's
    ``Runner.load_checkpoint`` (``^module.`` stripped). As mmengine's
    ``load_state_dict``: wrappers and test-time augmentation models load
    into their ``.module``; BN's ``num_batches_tracked`` does not count."""
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
