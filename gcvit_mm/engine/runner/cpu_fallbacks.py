"""Running a GPU config on a machine without CUDA: the config changes and
the process group that let it run on CPUs, each logged."""
import os

import torch
from mmengine.logging import print_log

from ...utils.config import typed_dicts


def _log(msg: str) -> None:
    # Once per job (rank 0): the runner's logger does not exist yet.
    if int(os.environ.get('RANK', '0')) == 0:
        print_log(msg, logger='current')


def adapt_to_device(cfg) -> None:
    """Without CUDA, change ``cfg`` in place: SyncBN -> BN, the gloo
    process group instead of nccl and the CPU DDP wrapper when launched
    distributed (``cfg.launcher``), and fp32 instead of AMP (mmengine's
    AmpOptimWrapper needs a GPU). Nothing changes on a machine with CUDA."""
    if torch.cuda.is_available():
        return
    sync_bn = [node for _, node in typed_dicts(cfg.get('model'))
               if node['type'] == 'SyncBN']
    for node in sync_bn:
        node['type'] = 'BN'
    if sync_bn:
        _log(f'No CUDA: {len(sync_bn)} SyncBN layer config(s) reverted to '
             f'BN.')
    if cfg.get('launcher', 'none') != 'none':
        dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
        if dist_cfg.get('backend', 'nccl') == 'nccl':
            dist_cfg['backend'] = 'gloo'
            _log('No CUDA: distributed backend set to gloo.')
        if cfg.get('model_wrapper_cfg') is None:
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
        _log('No CUDA: AMP needs a GPU; training in fp32 (OptimWrapper).')


def start_cpu_process_group(cfg) -> None:
    """torchrun on a machine without CUDA: join the gloo process group now,
    because mmengine's ``init_dist`` calls ``torch.cuda.set_device``, which
    a CPU build of torch lacks (the Runner skips ``init_dist`` when the
    group exists). Call it after the checks that may stop the job: a rank
    that stops then exits before the others wait for it in the group."""
    if torch.cuda.is_available() or cfg.get('launcher') != 'pytorch':
        return
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend=cfg.env_cfg.dist_cfg.backend)
