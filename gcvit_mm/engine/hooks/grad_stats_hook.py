"""Gradient and update size per part of the model over a training run."""
import math
import re
from collections import defaultdict
from typing import Dict, List

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

GCVIT_BLOCK = re.compile(r'backbone\.stages\.(\d+)\.blocks\.(\d+)\.(\w+)')
GCVIT_STAGE = re.compile(r'backbone\.stages\.(\d+)\.(\w+)')


def group_of(name: str) -> str:
    """A parameter's group: GC ViT backbone parameters by stage and block
    type (local / global attention, MLP, norms; down-sampler, token
    generator), other backbones' by their top-level module (ResNet's
    ``layer1``..``layer4``), the rest by the detector's or segmentor's
    top-level module (``roi_head``, ``decode_head``)."""
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
    if parts[0] == 'backbone':
        return '.'.join(parts[:2])
    return parts[0]


@HOOKS.register_module()
class GradStatsHook(Hook):
    """Per parameter group (:func:`group_of`) and optimizer step: the L2 norm
    of the gradient as the optimizer sees it (after clipping), and the L2
    norm of the update divided by that of the weights before it.

    Recorded around ``optimizer.step`` with torch's optimizer step hooks;
    :meth:`table` prints the means. Attributes ``grad``, ``update``
    (group -> one value per step) and ``numel`` (group -> parameters).
    """

    priority = 'LOWEST'

    def __init__(self) -> None:
        self.grad: Dict[str, List[float]] = defaultdict(list)
        self.update: Dict[str, List[float]] = defaultdict(list)
        self.numel: Dict[str, int] = defaultdict(int)
        self._handles = []

    def before_train(self, runner) -> None:
        params = [(n, p) for n, p in runner.model.named_parameters()
                  if p.requires_grad]
        for name, param in params:
            self.numel[group_of(name)] += param.numel()
        before = {}
        grad = defaultdict(float)

        def record_gradients(optimizer, args, kwargs):
            grad.clear()
            for name, param in params:
                if param.grad is not None:
                    grad[group_of(name)] += param.grad.pow(2).sum().item()
                before[name] = param.detach().clone()

        def record_update(optimizer, args, kwargs):
            delta, weight = defaultdict(float), defaultdict(float)
            for name, param in params:
                group = group_of(name)
                delta[group] += (param.detach() - before[name]).pow(2).sum()
                weight[group] += before[name].pow(2).sum()
            for group in weight:
                self.grad[group].append(math.sqrt(grad[group]))
                self.update[group].append(
                    math.sqrt(delta[group] / weight[group].clamp_min(1e-24)))

        optimizer = runner.optim_wrapper.optimizer
        self._handles = [
            optimizer.register_step_pre_hook(record_gradients),
            optimizer.register_step_post_hook(record_update)
        ]

    def after_train(self, runner) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def table(self) -> str:
        """One line per group: parameters, mean gradient norm, mean
        relative update; backbone groups first."""
        lines = [f'{"group":34s} {"params":>9s} {"mean |grad|":>11s} '
                 f'{"mean |update| / |w|":>20s}']
        for group in sorted(self.grad, key=lambda g: (
                not g.startswith('backbone'), g)):
            grad, update = self.grad[group], self.update[group]
            lines.append(f'{group:34s} {self.numel[group]:9d} '
                         f'{sum(grad) / len(grad):11.4f} '
                         f'{sum(update) / len(update):20.2e}')
        return '\n'.join(lines)
