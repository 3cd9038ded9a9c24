"""mmengine's Runner with gcvit_mm's input checks and one-line errors, for
any tool that builds the runner from a config (ours, mmdet's and mmseg's
``tools/train.py``/``test.py``, ``mim train``)."""
from contextlib import contextmanager
from typing import List, Optional

from mmengine.dist import broadcast_object_list, get_rank
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from ...utils.config import use_default_scope_for_package_bases
from ...utils.user_errors import UserError, report_user_errors
from ..checks import check_config, check_data, run_sections
from ..hooks import RequireFullCheckpoint
from .cpu_fallbacks import adapt_to_device, start_cpu_process_group
from .unreadable_images import UnreadableImageError, report_unreadable_images

# What a user writes to pick the run up after fixing the data.
RESUME = dict(resume='True')


@RUNNERS.register_module()
class InputCheckRunner(Runner):
    """:class:`mmengine.runner.Runner` that checks its input and reports bad
    input as one ``error: ...`` line (exit status 1) instead of a traceback.
    Select it in a config with ``runner_type = 'InputCheckRunner'`` (all
    gcvit_mm configs do); tools that honour ``runner_type`` then build it.

    In :meth:`from_cfg`, before anything is built (and before the Runner
    logs its environment):

    - without CUDA, adapts the config to CPUs (SyncBN -> BN, gloo and
      :class:`~gcvit_mm.engine.CPUDistributedDataParallel` under torchrun,
      fp32 instead of AMP), each change logged;
    - checks the GC ViT backbone arguments and the local checkpoint files
      (``load_from``, pretrained ``init_cfg``);
    - builds the dicts of ``gcvit_mm::`` config bases in the config's scope
      (see :func:`~gcvit_mm.utils.config
      .use_default_scope_for_package_bases`).

    When a train, val or test loop is built (so only the data the run
    reads): the dataset paths and COCO annotation files of its dataloader
    and evaluator, checked by rank 0, whose verdict every rank follows.
    While it runs: an image that cannot be read is one line naming it and
    its dataset's config key; a checkpoint that does not load, or that does
    not cover the model it is evaluated with or resumed into
    (:class:`~gcvit_mm.engine.RequireFullCheckpoint`, registered unless the
    config lists it), is one line naming it.
    """

    @classmethod
    def from_cfg(cls, cfg) -> 'InputCheckRunner':
        with report_user_errors():
            adapt_to_device(cfg)
            use_default_scope_for_package_bases(cfg)
            check_config(cfg)
        start_cpu_process_group(cfg)
        with report_user_errors('cannot build the runner from the config',
                                exc_types=(Exception, )):
            return super().from_cfg(cfg)

    def __init__(self, *args, **kwargs) -> None:
        self._dataloader_key: Optional[str] = None
        super().__init__(*args, **kwargs)

    def register_hooks(self, default_hooks=None, custom_hooks=None) -> None:
        super().register_hooks(default_hooks, custom_hooks)
        if not any(isinstance(h, RequireFullCheckpoint) for h in self.hooks):
            self.register_hook(RequireFullCheckpoint())

    # ------------------------------------------------------------ data
    def _check_data(self, sections: List[str]) -> None:
        """Rank 0 checks the data of ``sections`` and tells every rank:
        rank 0 reports a problem, the others stop without a second line."""
        verdict = [None]
        if get_rank() == 0:
            try:
                check_data(self.cfg, sections)
            except UserError as e:
                verdict = [e]
        broadcast_object_list(verdict)
        if verdict[0] is not None:
            if get_rank() == 0:
                with report_user_errors():
                    raise verdict[0]
            raise SystemExit(1)

    @contextmanager
    def _building_loop(self, loop, sections: List[str]):
        """Check the data of a loop that is about to be built, and name its
        dataloader in errors about unreadable images."""
        if isinstance(loop, dict):
            self._check_data(sections)
        self._dataloader_key = sections[0]
        try:
            yield
        finally:
            self._dataloader_key = None

    def build_train_loop(self, loop):
        with self._building_loop(loop, ['train_dataloader']):
            return super().build_train_loop(loop)

    def build_val_loop(self, loop):
        with self._building_loop(loop, run_sections(self.cfg, 'val')):
            return super().build_val_loop(loop)

    def build_test_loop(self, loop):
        with self._building_loop(loop, run_sections(self.cfg, 'test')):
            return super().build_test_loop(loop)

    def build_dataloader(self, dataloader, seed=None, diff_rank_seed=False):
        """:meth:`Runner.build_dataloader` (called by the loops on the
        runner) with a dataset whose pipeline reports an image it cannot
        read as one line. Wrapping the pipeline as the dataset comes out is
        the one point before a DataLoader worker copies the dataset
        (IterBasedTrainLoop starts its workers when it is built)."""
        loader = super().build_dataloader(
            dataloader, seed=seed, diff_rank_seed=diff_rank_seed)
        key = (f'{self._dataloader_key}.dataset' if self._dataloader_key
               else 'a dataset')
        report_unreadable_images(getattr(loader, 'dataset', None), key)
        return loader

    # ------------------------------------------------------------- runs
    def load_or_resume(self) -> None:
        """:meth:`Runner.load_or_resume`, any failure one line naming the
        checkpoint (its file was checked in :meth:`from_cfg`; what is left
        is its content: another model's optimizer state, ...)."""
        what = 'resume from' if self.cfg.get('resume') else 'load'
        with report_user_errors(
                f'cannot {what} checkpoint '
                f'{self.cfg.get("load_from") or "(latest in work_dir)"}',
                exc_types=(Exception, )):
            super().load_or_resume()

    def train(self):
        with report_user_errors('training stopped'):
            try:
                return super().train()
            except UnreadableImageError as e:
                # The checkpoints saved so far stay: resume from them.
                raise UserError(f'{e}, then resume from the last checkpoint',
                                settings=RESUME) from e

    def val(self) -> dict:
        with report_user_errors('validation stopped'):
            return super().val()

    def test(self) -> dict:
        with report_user_errors('testing stopped'):
            return super().test()
