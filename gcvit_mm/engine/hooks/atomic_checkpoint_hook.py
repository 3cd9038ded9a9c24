"""CheckpointHook after which a killed run can always be resumed.

mmengine 0.10.7's CheckpointHook, with ``max_keep_ckpts=1``, deletes
``epoch_1.pth``, then writes ``epoch_2.pth`` in place, then rewrites
``last_checkpoint``. A kill inside that sequence leaves a partial
``epoch_2.pth`` and a ``last_checkpoint`` naming the deleted ``epoch_1.pth``,
and ``--resume`` fails; a kill during the first write makes ``--resume``
start again from iteration 0 without a word.

This subclass changes three things, for checkpoints on the local file system
(other backends keep mmengine's behaviour):

1. every checkpoint file (periodic, last and best) and ``last_checkpoint``
   are written atomically (:class:`AtomicLocalBackend`);
2. an outdated checkpoint (``max_keep_ckpts``, previous best) is removed
   only after the new checkpoint and ``last_checkpoint`` are in place;
3. auto-resume (``resume=True``, no ``load_from``) whose ``last_checkpoint``
   is missing or names a missing/partial/unreadable file says so in one log
   line and resumes from the newest complete checkpoint, or warns that
   training starts from iteration 0 when there is none. Staged files left by
   a killed write are removed when training starts.
"""
import os
import os.path as osp
from contextlib import contextmanager
from typing import List, Optional

from mmengine.dist import barrier, is_main_process
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from ..atomic_files import remove_incomplete_files, write_atomically
from ..atomic_local_backend import ATOMIC_LOCAL_BACKEND
from ..checkpoint_files import checkpoint_problem, newest_complete_checkpoint

LAST_CHECKPOINT = 'last_checkpoint'  # the file find_latest_checkpoint reads


class _RemovalsAfterwards:
    """A file backend whose ``remove``/``rmtree`` are recorded, to be done
    by :meth:`run` once the new files are safely in place."""

    def __init__(self, backend):
        self.backend = backend
        self._pending: List[str] = []

    def remove(self, path):
        self._pending.append(path)

    rmtree = remove

    def run(self, keep: set):
        """Do the recorded removals, except of files in ``keep`` (absolute
        paths): a file rewritten under its old name is not outdated."""
        for path in self._pending:
            if osp.abspath(path) in keep:
                continue
            if self.backend.isfile(path):
                self.backend.remove(path)
            elif self.backend.isdir(path):  # deepspeed saves folders
                self.backend.rmtree(path)

    def __getattr__(self, name):  # everything else: the real backend's
        if name == 'backend':  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.backend, name)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """Drop-in ``CheckpointHook`` (same arguments) that never leaves a
    partial checkpoint or a dangling ``last_checkpoint`` (module docstring).
    """

    def _checkpoint_dir(self, runner) -> str:
        """Where checkpoints go: ``CheckpointHook.before_train``'s rule,
        needed in ``before_run``, which comes first."""
        if self.out_dir is None:
            return runner.work_dir
        return osp.join(self.out_dir,
                        osp.basename(runner.work_dir.rstrip(osp.sep)))

    def _is_atomic(self, runner) -> bool:
        """Local folder and no user-chosen backend: ours can take over."""
        folder = str(self.out_dir or runner.work_dir)
        return '://' not in folder and self.file_client_args is None and (
            self.backend_args is None
            or self.backend_args.get('backend') == ATOMIC_LOCAL_BACKEND)

    # --------------------------------------------------------------- resume
    def before_run(self, runner) -> None:
        # Runner.train/val/test call before_run, then load_or_resume, which
        # reads work_dir/last_checkpoint when resume=True and load_from=None.
        super().before_run(runner)
        if runner._resume and runner._load_from is None and self._is_atomic(
                runner):
            if is_main_process():
                self._point_last_checkpoint_at_a_complete_one(runner)
            barrier()  # other ranks read last_checkpoint only after the fix

    def _point_last_checkpoint_at_a_complete_one(self, runner) -> None:
        pointer = osp.join(runner.work_dir, LAST_CHECKPOINT)
        named: Optional[str] = None
        if not osp.isfile(pointer):
            why = f'there is no {pointer}'
        else:
            with open(pointer) as f:
                named = f.read().strip()
            if not named:
                why = f'{pointer} is empty'
            else:
                problem = checkpoint_problem(named)
                if problem is None:
                    return  # mmengine resumes from it
                why = f'{LAST_CHECKPOINT} names {named}, which {problem}'
        folder = self._checkpoint_dir(runner)
        found, rejected = newest_complete_checkpoint(
            folder, self.filename_tmpl, skip=named or None)
        why = '; '.join([why] + rejected)
        if found is None:
            if named is not None:
                # naming a broken file would make mmengine fail instead of
                # starting over; the first save writes a new one
                os.remove(pointer)
            runner.logger.warning(
                f'Auto-resume: no complete checkpoint in {folder} ({why}); '
                'training starts from iteration 0.')
            return
        write_atomically(pointer, found.encode())
        runner.logger.warning(
            f'Auto-resume: {why}; resuming from {found}, the newest complete '
            f'checkpoint in {folder}.')

    # --------------------------------------------------------------- saving
    def before_train(self, runner) -> None:
        if self._is_atomic(runner):
            # every checkpoint write goes through the backend named here
            self.backend_args = dict(backend=ATOMIC_LOCAL_BACKEND)
        super().before_train(runner)
        if self._is_atomic(runner) and is_main_process():
            removed = []
            for folder in sorted({self.out_dir, runner.work_dir}):
                removed += remove_incomplete_files(folder)
            if removed:
                runner.logger.info(
                    'Removed what interrupted checkpoint writes left: '
                    f'{", ".join(removed)}')

    def _writes_atomically(self) -> bool:
        return bool(self.backend_args) and self.backend_args.get(
            'backend') == ATOMIC_LOCAL_BACKEND

    def _current_files(self) -> set:
        """Checkpoints the hook (and the saved message hub) refer to now."""
        paths = {self.last_ckpt, getattr(self, 'best_ckpt_path', None)}
        paths.update(getattr(self, 'best_ckpt_path_dict', {}).values())
        return {osp.abspath(p) for p in paths if p}

    @contextmanager
    def _removals_deferred(self):
        """mmengine removes the previous best checkpoint before writing the
        new one; hold every removal until the writes in this block are done.
        """
        deferred = self.file_backend = _RemovalsAfterwards(self.file_backend)
        try:
            yield
        finally:
            # after an exception the old files stay: the new ones may be bad
            self.file_backend = deferred.backend
        deferred.run(keep=self._current_files())

    def _save_checkpoint_with_step(self, runner, step, meta):
        """mmengine's method with the same bookkeeping and files, in a safe
        order: new checkpoint, then ``last_checkpoint`` (atomic too; mmengine
        uses a plain ``open()``), then the removal of the outdated one."""
        if not self._writes_atomically():
            return super()._save_checkpoint_with_step(runner, step, meta)
        outdated = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            # (the best-checkpoint path saves the same step a second time)
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                outdated = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            # Saved in the checkpoint. The outdated step stays listed until
            # it is removed, after this save: resuming from this checkpoint
            # after a kill in between, CheckpointHook.before_train trims the
            # list to max_keep_ckpts and removes the file it left.
            runner.message_hub.update_info(
                'keep_ckpt_ids', ([] if outdated is None else [outdated]) +
                list(self.keep_ckpt_ids))

        ckpt_filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir,
                                                     ckpt_filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            ckpt_filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():  # Runner.save_checkpoint writes on rank 0
            return
        self.file_backend.put_text(self.last_ckpt,
                                   osp.join(runner.work_dir, LAST_CHECKPOINT))
        if outdated is not None:
            path = self.file_backend.join_path(
                self.out_dir, self.filename_tmpl.format(outdated))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed saves folders
                self.file_backend.rmtree(path)

    def _save_best_checkpoint(self, runner, metrics) -> None:
        if not self._writes_atomically():
            return super()._save_best_checkpoint(runner, metrics)
        # mmengine removes the previous best before writing the new one
        with self._removals_deferred():
            super()._save_best_checkpoint(runner, metrics)
