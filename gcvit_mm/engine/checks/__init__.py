"""Checks of a run's input (config, datasets, annotation files,
checkpoints), each problem one :class:`~gcvit_mm.utils.UserError` naming the
file or config key and the fix. :class:`~gcvit_mm.engine.InputCheckRunner`
runs them inside mmengine; the tools also run the data checks before they
build the runner."""
import os
from typing import List

from .backbones import check_backbones
from .checkpoints import (check_checkpoint_file, check_config_checkpoints,
                          pretrained_checkpoints, weights_not_covered)
from .coco_annotations import check_annotation_files, summarize_coco
from .datasets import check_data_paths, missing_data_paths

__all__ = [
    'check_annotation_files', 'check_backbones', 'check_checkpoint_file',
    'check_config', 'check_config_checkpoints', 'check_data',
    'check_data_of_run', 'check_data_paths', 'is_node_leader',
    'missing_data_paths', 'pretrained_checkpoints', 'run_sections',
    'summarize_coco', 'weights_not_covered'
]

MODES = ('train', 'val', 'test')


def run_sections(cfg, mode: str) -> List[str]:
    """The dataloader and evaluator sections that a run of ``mode`` reads:
    'train' the train dataloader and, when the config validates, the val
    dataloader and evaluator; 'val' and 'test' their own two."""
    if mode not in MODES:
        raise ValueError(f'mode must be one of {MODES}, got {mode!r}')
    if mode != 'train':
        return [f'{mode}_dataloader', f'{mode}_evaluator']
    sections = ['train_dataloader']
    if cfg.get('val_cfg') and cfg.get('val_dataloader'):
        sections += ['val_dataloader', 'val_evaluator']
    return sections


def check_config(cfg) -> None:
    """What needs no dataset: the GC ViT backbone arguments and the local
    checkpoint files (``load_from``, pretrained ``init_cfg``)."""
    check_backbones(cfg)
    check_config_checkpoints(cfg)


def check_data(cfg, sections: List[str]) -> None:
    """The dataset paths, then the COCO annotation files, of ``sections``."""
    check_data_paths(cfg, sections)
    check_annotation_files(cfg, sections)


def is_node_leader(launcher: str) -> bool:
    """Whether this is the first process of its node. torchrun sets
    LOCAL_RANK (the tools set it from --local-rank otherwise); srun and
    mpirun have their own variables."""
    var = {'slurm': 'SLURM_LOCALID',
           'mpi': 'OMPI_COMM_WORLD_LOCAL_RANK'}.get(launcher, 'LOCAL_RANK')
    return int(os.environ.get(var, '0')) == 0


def check_data_of_run(cfg, mode: str) -> None:
    """:func:`check_data` for a run of ``mode``, before the runner (and the
    process group) exists: only in the first process of each node, which
    reads the same files as the others. When it exits with the error,
    torchrun stops the others while they wait for it to join the process
    group, so the job prints one error line, and a 450 MB COCO file is
    parsed once per node instead of once per process (the runner's own
    check then finds it parsed)."""
    from mmengine.registry import init_default_scope

    from ...utils.config import scope_of
    init_default_scope(scope_of(cfg))
    if is_node_leader(cfg.get('launcher', 'none')):
        check_data(cfg, run_sections(cfg, mode))
