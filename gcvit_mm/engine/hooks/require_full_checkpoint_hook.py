"""Refuse to evaluate a checkpoint that does not cover the model."""
from typing import Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ...checkpoint import foreign_backbone_format
from ...utils.user_errors import UserError
from ..checks import weights_not_covered


@HOOKS.register_module()
class RequireFullCheckpoint(Hook):
    """Stop a run whose loaded checkpoint does not give every weight of the
    model when the run evaluates it (a test run, or a validation run outside
    training) or resumes from it: evaluating weights left at their random
    init, or resuming another model's run, is never what was meant, and
    mmengine only logs a warning (``load_checkpoint(strict=False)``).

    Training from ``load_from`` is not stopped: fine-tuning loads a
    checkpoint with other heads on purpose.

    The check is made on the checkpoint as it goes into the model (the
    hook runs last among the ``after_load_checkpoint`` hooks) and raised
    there when resuming, else before the first test (or val) iteration, as
    a one-line :class:`~gcvit_mm.utils.UserError`. :class:`~gcvit_mm.engine
    .InputCheckRunner` registers this hook itself; with another runner, add
    ``custom_hooks = [dict(type='RequireFullCheckpoint')]``.
    """

    priority = 'VERY_LOW'

    def __init__(self) -> None:
        self.problem: Optional[str] = None
        self.training = False

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        missing, other_shape, total = weights_not_covered(
            runner.model, checkpoint)
        path = runner.cfg.get('load_from') or 'the loaded checkpoint'
        self.problem = None
        fmt = foreign_backbone_format(checkpoint.get('state_dict', checkpoint))
        if fmt:  # e.g. a detector trained with the paper's code
            self.problem = (
                f"checkpoint {path!r} holds a GC ViT backbone in the {fmt}'s "
                f'layout; convert it first: python tools/convert_checkpoint.py '
                f'{path} converted.pth, then use converted.pth')
            if runner.cfg.get('resume'):
                raise UserError(self.problem)
            return
        for keys, problem in ((missing, 'lacks'),
                              (other_shape, 'has another shape for')):
            if keys:
                self.problem = (
                    f'checkpoint {path!r} {problem} {len(keys)} of the '
                    f"model's {total} weights (e.g. {', '.join(keys[:3])}): "
                    f'is it a checkpoint of this config? Use the '
                    f'checkpoint that training this config wrote (its '
                    f'work_dir/*.pth)')
                break
        if self.problem and runner.cfg.get('resume'):
            raise UserError(self.problem)

    def before_train(self, runner) -> None:
        self.training = True

    def after_train(self, runner) -> None:
        self.training = False

    def before_test(self, runner) -> None:
        if self.problem:
            raise UserError(self.problem)

    def before_val(self, runner) -> None:
        if self.problem and not self.training:
            raise UserError(self.problem)
