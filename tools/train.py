# Train a detector (mmdet config) or a segmentor (mmseg config): mmdet's
# tools/train.py, same flags, with gcvit_mm imported first (so `gcvit_mm::`
# config bases resolve) and gcvit_mm's InputCheckRunner as the default
# runner type (our configs name it, so mmdet's and mmseg's own train.py get
# the same checks). What only this script adds: a config that cannot be read
# and bad flags are one `error:` line, and the data is checked before the
# runner logs its environment. See README "Errors".
import argparse
import os
import warnings

# mmengine imports pkg_resources (deprecated in setuptools >= 67): noise.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
from mmengine.config import DictAction  # noqa: E402

from gcvit_mm.engine.checks import check_data_of_run  # noqa: E402
from gcvit_mm.engine.runner import build_runner, set_work_dir  # noqa: E402
from gcvit_mm.utils import (UserError, load_config,  # noqa: E402
                            report_user_errors)


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
    set_work_dir(cfg, args.work_dir, args.config)

    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.loss_scale = 'dynamic'

    if args.auto_scale_lr:
        if 'enable' not in cfg.get('auto_scale_lr', {}) or \
                'base_batch_size' not in cfg.auto_scale_lr:
            raise UserError('--auto-scale-lr needs auto_scale_lr = dict('
                            'enable=False, base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True

    # resume is determined in this priority: resume from > auto_resume
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def main(argv=None):
    args = parse_args(argv)
    with report_user_errors():
        cfg = build_cfg(args)
        check_data_of_run(cfg, 'train')
    runner = build_runner(cfg)
    runner.train()
    return runner


if __name__ == '__main__':
    main()
