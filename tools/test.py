# Test (and evaluate) a detector or a segmentor: mmdet's / mmseg's
# tools/test.py (same flags), with gcvit_mm imported first and its
# InputCheckRunner as the default runner type, as tools/train.py. The runner
# refuses a checkpoint that does not cover the model (RequireFullCheckpoint).
import argparse
import os
import warnings

# mmengine imports pkg_resources (deprecated in setuptools >= 67): noise.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
from mmengine.config import DictAction  # noqa: E402

from gcvit_mm.engine.checks import check_data_of_run  # noqa: E402
from gcvit_mm.engine.runner import build_runner, set_work_dir  # noqa: E402
from gcvit_mm.utils import (UserError, load_config,  # noqa: E402
                            report_user_errors, scope_of)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and eval) a detector (mmdet) or segmentor (mmseg)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--out',
        type=str,
        help='mmdet: dump predictions to a .pkl file; mmseg: directory to '
        'save the predicted maps, for offline evaluation')
    parser.add_argument(
        '--show', action='store_true', help='show prediction results')
    parser.add_argument(
        '--show-dir',
        help='directory where painted images will be saved. '
        'If specified, it will be automatically saved '
        'to the work_dir/timestamp/show_dir')
    parser.add_argument(
        '--wait-time', type=float, default=2, help='the interval of show (s)')
    parser.add_argument(
        '--tta',
        action='store_true',
        help='test-time augmentation (multi-scale + flip) with the '
        "config's tta_model and tta_pipeline")
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
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def trigger_visualization_hook(cfg, args, scope):
    """Turn on the visualization hook (mmdet's and mmseg's spelling)."""
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise UserError('--show/--show-dir need a visualization hook in '
                        "default_hooks (e.g. dict(type='DetVisualizationHook'))")
    hook['draw'] = True
    if args.show:
        hook['show'] = True
        hook['wait_time'] = args.wait_time
    if args.show_dir:
        if scope == 'mmseg':
            cfg.visualizer['save_dir'] = args.show_dir
        else:
            hook['test_out_dir'] = args.show_dir


def build_cfg(args):
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    scope = scope_of(cfg)
    set_work_dir(cfg, args.work_dir, args.config)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        trigger_visualization_hook(cfg, args, scope)
    if args.tta:
        # As mmdet's and mmseg's own test.py: wrap the model in tta_model.
        if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
            raise UserError('--tta needs tta_model and tta_pipeline in the '
                            'config (mmseg::_base_/datasets/ade20k.py has '
                            'them)')
        cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
        cfg.tta_model.module = cfg.model
        cfg.model = cfg.tta_model
    if args.out is not None:
        if scope == 'mmseg':
            cfg.test_evaluator['output_dir'] = args.out
            cfg.test_evaluator['keep_results'] = True
        elif not args.out.endswith(('.pkl', '.pickle')):
            raise UserError(f'--out must name a .pkl file, got {args.out!r}')
    return cfg


def main(argv=None):
    args = parse_args(argv)
    with report_user_errors():
        cfg = build_cfg(args)
        check_data_of_run(cfg, 'test')
    runner = build_runner(cfg)
    if args.out is not None and cfg.default_scope != 'mmseg':
        from mmdet.evaluation import DumpDetResults
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    return runner.test()


if __name__ == '__main__':
    main()
