"""Mask R-CNN and Cascade Mask R-CNN with a GC ViT backbone train on the toy
set through tools/train.py: finite losses that fall, then pycocotools box
and mask mAP; and an interrupted run resumes exactly where it stopped."""
import math
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
import torch

from detection_utils import (TOOLS, RecordRunHook, load_tool,
                             tool_env, write_small_config)


@pytest.mark.parametrize('head', ['mask_rcnn', 'cascade'])
def test_losses_fall_then_coco_box_and_mask_map(tmp_path, toy_env, head):
    # The same two images every iteration, so the loss must fall.
    cfg = write_small_config(
        tmp_path / f'{head}.py', head,
        train_cfg='dict(max_epochs=6, val_interval=6)',
        param_scheduler='[]',
        optim_wrapper="dict(optimizer=dict(lr=1e-3))",
        custom_hooks="[dict(type='RecordRunHook')]",
        randomness='dict(seed=0)')
    runner = load_tool('train').main([
        cfg, '--work-dir', str(tmp_path / 'work'), '--cfg-options',
        'train_dataloader.dataset.indices=2'
    ])
    hook = RecordRunHook.last
    assert runner.iter == 6 and len(hook.losses) == 6
    totals = [sum(step.values()) for step in hook.losses]
    assert all(math.isfinite(t) for t in totals), hook.losses
    assert sum(totals[-2:]) < sum(totals[:2]), totals
    metrics = hook.metrics[-1]
    for key in ('coco/bbox_mAP', 'coco/segm_mAP', 'coco/bbox_mAP_50',
                'coco/segm_mAP_50'):
        assert 0 <= metrics[key] <= 1, metrics
    if head == 'cascade':  # SyncBN in the heads became BN on CPU
        assert not any(isinstance(m, torch.nn.SyncBatchNorm)
                       for m in runner.model.modules())


def _optimizer_tensors(state):
    out = {}
    for pid, pstate in state['state'].items():
        for name, value in pstate.items():
            out[(pid, name)] = torch.as_tensor(value)
    return out


@pytest.mark.compat  # kill and resume on the older stacks too
def test_interrupted_run_resumes_with_its_optimizer_state(tmp_path, toy_env):
    cfg = write_small_config(
        tmp_path / 'resume.py', 'mask_rcnn',
        train_cfg='dict(max_epochs=50, val_interval=100)',
        default_hooks="dict(checkpoint=dict(interval=1, max_keep_ckpts=-1))",
        custom_hooks="[dict(type='RecordRunHook')]")
    work = tmp_path / 'work'
    args = [cfg, '--work-dir', str(work), '--cfg-options',
            'train_dataloader.dataset.indices=4']  # 2 iterations per epoch
    proc = subprocess.Popen(
        [sys.executable, osp.join(TOOLS, 'train.py')] + args +
        ['custom_hooks=[]'], env=tool_env(toy_env),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first = work / 'epoch_1.pth'
    try:
        deadline = time.time() + 300
        # last_checkpoint is written after the checkpoint file is complete
        while not (work / 'last_checkpoint').exists():
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.time() < deadline, 'no checkpoint within 300 s'
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)  # the interruption
        proc.communicate()
    assert proc.returncode != 0  # it was killed, not finished
    assert first.exists()

    # gcvit_mm's safe loading reads mmengine's checkpoint
    from gcvit_mm.checkpoint import load_checkpoint_file
    saved = load_checkpoint_file(str(first))
    assert saved['meta']['iter'] == 2 and saved['meta']['epoch'] == 1

    runner = load_tool('train').main(
        args + ['train_cfg.max_epochs=2', '--resume', str(first)])
    hook = RecordRunHook.last
    assert (hook.start_epoch, hook.start_iter) == (1, 2)
    resumed = _optimizer_tensors(hook.start_optim_state['optimizer']) \
        if 'optimizer' in hook.start_optim_state else _optimizer_tensors(
            hook.start_optim_state)
    expected = _optimizer_tensors(saved['optimizer'])
    assert resumed.keys() == expected.keys() and len(expected) > 0
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key
    assert runner.iter == 4 and len(hook.losses) == 2
    assert (work / 'epoch_2.pth').exists()
    os.remove(first)
