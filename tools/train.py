# Train a detector or a segmentor: mmdet's tools/train.py (same flags), with
# the registry scope taken from the config, so mmdet and mmseg configs both
# work, CPU fallbacks (SyncBN -> BN, gloo, fp32 for --amp) and one-line
# errors for bad input (missing dataset, bad config, corrupt checkpoint).
import argparse
import os
import os.path as osp
import sys
import warnings

# mmengine imports pkg_resources (deprecated in setuptools >= 67): noise.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
from mmengine.config import DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import (CHECKPOINT_FUNCS, UserError, adapt_to_device,  # noqa: E402
                    check_checkpoint_file, check_data_paths, fail,
                    load_config, pretrained_checkpoints, scope_of,
                    start_cpu_process_group, user_errors)
from input_checks import (UnreadableImageError,  # noqa: E402
                          check_annotation_files, check_backbones,
                          report_unreadable_images)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a detector (mmdet) or a segmentor (mmseg)')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp',
        action='store_true',
        default=False,
        help='enable automatic-mixed-precision training (GPU only; fp32 '
        'with a log line on CPU)')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='enable automatically scaling LR.')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    # torch.distributed.launch passes --local-rank (torchrun sets LOCAL_RANK)
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def build_cfg(args):
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    scope_of(cfg)

    # work_dir is determined in this priority: CLI > segment in file > filename
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'auto_scale_lr' in cfg and \
                'enable' in cfg.auto_scale_lr and \
                'base_batch_size' in cfg.auto_scale_lr:
            cfg.auto_scale_lr.enable = True
        else:
            raise UserError('--auto-scale-lr needs auto_scale_lr = dict('
                            'enable=False, base_batch_size=...) in the config')

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    adapt_to_device(cfg, args.launcher)
    return cfg


def check_inputs(cfg):
    """Fail fast, before the runner spends time building anything."""
    from mmengine.registry import init_default_scope
    init_default_scope(scope_of(cfg))
    check_backbones(cfg)
    sections = ['train_dataloader']
    if cfg.get('val_cfg') and cfg.get('val_dataloader'):
        sections += ['val_dataloader', 'val_evaluator']
    check_data_paths(cfg, sections)
    check_annotation_files(cfg, sections, cfg.launcher)
    check_checkpoint_file(cfg.get('load_from'),
                          'resume checkpoint' if cfg.get('resume') else
                          'load_from checkpoint')
    for path in pretrained_checkpoints(cfg):
        check_checkpoint_file(path, 'pretrained checkpoint (init_cfg)')


def main(argv=None):
    args = parse_args(argv)
    try:
        cfg = build_cfg(args)
        check_inputs(cfg)
    except UserError as e:
        fail(str(e))
    start_cpu_process_group(cfg, args.launcher)

    with user_errors(f'cannot build the runner from {args.config}'):
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            runner = RUNNERS.build(cfg)

    report_unreadable_images(
        runner, cfg, ['train_dataloader', 'val_dataloader'],
        then='rerun with --resume to continue from the last checkpoint saved')

    # Checkpoint problems (pretrained weights, --resume) surface when the
    # runner loads them at the start of train(); an unreadable image when a
    # data loader reaches it (the checkpoints saved so far stay); everything
    # else keeps its traceback.
    with user_errors('training stopped', (UnreadableImageError, )), \
            user_errors('cannot load a checkpoint',
                        only_from=CHECKPOINT_FUNCS):
        runner.train()
    return runner


if __name__ == '__main__':
    main()
