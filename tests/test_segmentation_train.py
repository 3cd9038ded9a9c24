"""Training and evaluation on the embedded toy ADE20K data: the loss falls
over a few iterations and IoUMetric reports mIoU.

A scaled-down GC ViT (dim 16) keeps this CPU-fast; the configs are the toy
config with a few overrides written next to the test (``tiny_config``, also
used by test_segmentation_dist.py)."""
import copy
import os.path as osp
import textwrap

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook

from gcvit_mm.datasets.toy_ade import CLASSES

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOY_CONFIG = osp.join(REPO, 'configs', 'upernet', 'gcvit_xxt_toy_ade.py')
GEN_CFG = dict(num_train=8, num_val=4, img_size=(96, 120), seed=0)


def tiny_config(path, max_iters, data_root=None):
    """Write a config deriving from the toy config: dim-16 GC ViT, small
    heads, 8 train / 4 val images, constant lr, no dataloader workers."""
    root = '' if data_root is None else f'data_root={str(data_root)!r}, '
    text = f'''
        _base_ = {TOY_CONFIG!r}
        gen_cfg = {GEN_CFG!r}
        model = dict(
            backbone=dict(
                arch=dict(_delete_=True, dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
                          mlp_ratio=2., layer_scale=None),
                drop_path_rate=0.),
            decode_head=dict(in_channels=[16, 32, 64, 128], channels=32),
            auxiliary_head=dict(in_channels=64, channels=16))
        train_dataloader = dict(
            batch_size=2, num_workers=0, persistent_workers=False,
            dataset=dict({root}gen_cfg=gen_cfg))
        val_dataloader = dict(
            num_workers=0, persistent_workers=False,
            dataset=dict({root}gen_cfg=gen_cfg))
        test_dataloader = val_dataloader
        param_scheduler = [
            dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0,
                 end={max_iters})]
        train_cfg = dict(max_iters={max_iters}, val_interval={max_iters})
        default_hooks = dict(
            logger=dict(interval=1),
            checkpoint=dict(interval={max_iters}))
        randomness = dict(seed=0)
    '''
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    return tmp_path_factory.mktemp('toy_data') / 'toy_ade'


class KeepFirstBatch(Hook):
    """Keeps a copy of the first training batch."""

    def __init__(self):
        self.batch = None

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.batch is None:
            self.batch = copy.deepcopy(data_batch)


def batch_loss(model, batch) -> float:
    model.train()
    with torch.no_grad():
        data = model.data_preprocessor(copy.deepcopy(batch), True)
        loss, _ = model.parse_losses(model(**data, mode='loss'))
    return loss.item()


def test_loss_decreases_and_iou_metric_reports_miou(tmp_path, toy_root):
    from mmengine.runner import Runner
    max_iters = 16
    cfg = Config.fromfile(tiny_config(tmp_path / 'tiny.py', max_iters,
                                      toy_root))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.train_dataloader.batch_size = 4
    cfg.optim_wrapper.optimizer.lr = 3e-3  # a few iterations must show it
    cfg.train_cfg.val_interval = 1000  # validate explicitly below
    runner = Runner.from_cfg(cfg)
    first_batch = KeepFirstBatch()
    runner.register_hook(first_batch)
    untrained = runner.val()
    runner.train()

    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == max_iters
    assert np.isfinite(losses).all()
    # the logged loss (a new random crop each time) falls on average ...
    half = max_iters // 2
    assert losses[half:].mean() < losses[:half].mean(), losses
    # ... and the loss of the first batch falls clearly
    assert batch_loss(runner.model, first_batch.batch) < 0.8 * losses[0]

    metrics = runner.val()
    assert set(metrics) >= {'mIoU', 'aAcc', 'mAcc'}
    assert 0. <= metrics['mIoU'] <= 100.
    assert runner.val_evaluator.dataset_meta['classes'] == CLASSES
    assert metrics['mIoU'] > untrained['mIoU'] + 5, (untrained, metrics)
