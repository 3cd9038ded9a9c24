# Gradient norm and relative update of each part of a model over the first
# training iterations, with the config's own optimizer, lr schedule and data:
# does any stage starve or explode early on? Backbone parameters are grouped
# by stage (and for GC ViT by block type: local / global attention and MLP,
# down-sampler, token generator), the rest by top-level module.
#   python tools/grad_stats.py CONFIG [--iters 60] [--cfg-options ...]
# Used for issue 9 (docs/from_scratch.md) on the toy job and its ResNet-18
# side-by-side. Nothing is saved (no checkpoints, a temporary work dir).
import argparse
import math
import os.path as osp
import re
import sys
import tempfile
from collections import defaultdict

from mmengine.config import DictAction
from mmengine.hooks import Hook
from mmengine.runner import Runner

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from common import adapt_to_device, load_config, scope_of  # noqa: E402

GCVIT_BLOCK = re.compile(r'backbone\.stages\.(\d+)\.blocks\.(\d+)\.(\w+)')
GCVIT_STAGE = re.compile(r'backbone\.stages\.(\d+)\.(\w+)')


def group_of(name: str) -> str:
    """Parameter name -> its group in the table."""
    block = GCVIT_BLOCK.match(name)
    if block:
        stage, index, part = block.groups()
        kind = 'global' if int(index) % 2 else 'local'
        part = {'attn': 'attention', 'mlp': 'mlp'}.get(part, 'norms')
        return f'backbone.stage{stage}.{kind}.{part}'
    stage = GCVIT_STAGE.match(name)
    if stage:
        return f'backbone.stage{stage.group(1)}.{stage.group(2)}'
    parts = name.split('.')
    if parts[0] == 'backbone':  # e.g. ResNet: layer1..4, conv1, norm1
        return '.'.join(parts[:2])
    return parts[0]


class GradStatsHook(Hook):
    """Per group and iteration: the gradient's L2 norm (after clipping, as
    the optimizer sees it) and the update's L2 norm over the weights'."""

    def __init__(self):
        self.grad = defaultdict(list)
        self.update = defaultdict(list)
        self.numel = defaultdict(int)

    def before_train(self, runner):
        params = [(n, p) for n, p in runner.model.named_parameters()
                  if p.requires_grad]
        for name, param in params:
            self.numel[group_of(name)] += param.numel()
        optimizer = runner.optim_wrapper.optimizer
        step = optimizer.step

        def step_and_record(*args, **kwargs):
            grad, before = defaultdict(float), {}
            for name, param in params:
                if param.grad is not None:
                    grad[group_of(name)] += param.grad.pow(2).sum().item()
                before[name] = param.detach().clone()
            result = step(*args, **kwargs)
            delta, weight = defaultdict(float), defaultdict(float)
            for name, param in params:
                group = group_of(name)
                delta[group] += (param.detach() - before[name]).pow(2).sum()
                weight[group] += before[name].pow(2).sum()
            for group in weight:
                self.grad[group].append(math.sqrt(grad[group]))
                self.update[group].append(
                    math.sqrt(delta[group] / weight[group].clamp_min(1e-24)))
            return result

        optimizer.step = step_and_record

    def table(self) -> str:
        lines = [f'{"group":34s} {"params":>9s} {"mean |grad|":>11s} '
                 f'{"mean |update| / |w|":>20s}']
        for group in sorted(self.grad, key=lambda g: (
                not g.startswith('backbone'), g)):
            grad, update = self.grad[group], self.update[group]
            lines.append(f'{group:34s} {self.numel[group]:9d} '
                         f'{sum(grad) / len(grad):11.4f} '
                         f'{sum(update) / len(update):20.2e}')
        return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('config')
    parser.add_argument('--iters', type=int, default=60)
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args = parser.parse_args(argv)

    cfg = load_config(args.config, args.cfg_options)
    scope_of(cfg)
    adapt_to_device(cfg, 'none')
    cfg.work_dir = tempfile.mkdtemp(prefix='grad_stats_')
    # Only the first iterations, no evaluation, nothing written.
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=args.iters,
                         val_interval=args.iters + 1)
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = None
    cfg.param_scheduler = [s for s in cfg.get('param_scheduler', []) or []
                           if not s.get('by_epoch', True)]  # the warm-up
    runner = Runner.from_cfg(cfg)
    hook = GradStatsHook()
    runner.register_hook(hook, priority='LOWEST')
    runner.train()
    print(f'first {args.iters} iterations of {args.config}:')
    print(hook.table())
    return hook


if __name__ == '__main__':
    main()
