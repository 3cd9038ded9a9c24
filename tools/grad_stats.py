# Gradient norm and relative update of each part of a model over the first
# training iterations, with the config's own optimizer, lr schedule and data:
# does any stage starve or explode early on? Backbone parameters are grouped
# by stage (and for GC ViT by block type: local / global attention and MLP,
# down-sampler, token generator), the rest by top-level module
# (gcvit_mm.engine.GradStatsHook).
#   python tools/grad_stats.py CONFIG [--iters 60] [--cfg-options ...]
# Used for docs/from_scratch.md on the toy job and its ResNet-18
# side-by-side. Nothing is saved (no checkpoints, a temporary work dir).
import argparse
import tempfile

from mmengine.config import DictAction

from gcvit_mm.engine import GradStatsHook
from gcvit_mm.engine.runner import build_runner
from gcvit_mm.utils import load_config, report_user_errors, scope_of


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=60)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)

    with report_user_errors():
        cfg = load_config(args.config, args.cfg_options)
        scope_of(cfg)
    cfg.work_dir = tempfile.mkdtemp(prefix='grad_stats_')
    # Only the first iterations, no evaluation, nothing written.
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=args.iters,
                         val_interval=args.iters + 1)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = None
    cfg.param_scheduler = [s for s in cfg.get('param_scheduler', []) or []
                           if not s.get('by_epoch', True)]  # the warm-up
    runner = build_runner(cfg)
    hook = GradStatsHook()
    runner.register_hook(hook)
    runner.train()
    print(f'first {args.iters} iterations of {args.config}:')
    print(hook.table())
    return hook


if __name__ == '__main__':
    main()
