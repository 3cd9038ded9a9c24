"""RunReportHook, set in both toy configs: when training ends, the log dir
holds predictions drawn next to the ground truth and the loss / metric
curves, and the last log lines say where; a drawing failure costs nothing."""
import os.path as osp

import mmcv
import numpy as np
import pytest

from detection_utils import load_tool, write_small_config
from gcvit_mm.engine import RunReportHook
from test_segmentation_train import tiny_config

TRAIN = load_tool('train')


def report_hook(runner) -> RunReportHook:
    hooks = [h for h in runner.hooks if isinstance(h, RunReportHook)]
    assert len(hooks) == 1, 'the toy config sets RunReportHook'
    return hooks[0]


def log_text(runner) -> str:
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


def assert_curves_png(hook, runner):
    assert hook.paths['curves'] == osp.join(runner.log_dir, 'curves.png')
    assert mmcv.imread(hook.paths['curves']).shape == (400, 1100, 3)


def assert_gt_drawn(hook, raw_images, columns=2):
    """Cell k of predictions.png is image k drawn as ground truth |
    prediction: twice its width, and its ground-truth half is the image with
    something drawn on it."""
    grid = mmcv.imread(hook.paths['predictions'], channel_order='rgb')
    h = max(i.shape[0] for i in raw_images)
    w = 2 * max(i.shape[1] for i in raw_images)
    rows = -(-len(raw_images) // columns)
    assert grid.shape == (rows * h, columns * w, 3)
    for k, raw in enumerate(raw_images):
        r, c = divmod(k, columns)
        gt_half = grid[r * h:r * h + raw.shape[0],
                       c * w:c * w + raw.shape[1]].astype(int)
        changed = np.abs(gt_half - raw.astype(int)).max(-1) > 40
        assert 0.01 < changed.mean() < 0.9, (k, changed.mean())


def test_detection_run_ends_with_predictions_and_curves(
        tmp_path, monkeypatch, tiny_toy_data):
    monkeypatch.setenv('GCVIT_MM_DATA', tiny_toy_data)
    cfg = write_small_config(
        tmp_path / 'small.py', 'mask_rcnn',
        train_cfg='dict(max_epochs=2, val_interval=1)',
        default_hooks="dict(checkpoint=dict(interval=2))")
    runner = TRAIN.main([cfg, '--work-dir', str(tmp_path / 'work'),
                         '--cfg-options', 'train_dataloader.dataset.indices=2'])
    hook = report_hook(runner)
    assert [i for i, _ in hook.losses] == [1, 2]
    assert sorted(hook.metrics) == ['coco/bbox_mAP', 'coco/segm_mAP']
    assert [i for i, _ in hook.metrics['coco/bbox_mAP']] == [1, 2]
    # the value the evaluation logged last
    assert hook.metrics['coco/bbox_mAP'][-1][1] == pytest.approx(
        runner.message_hub.get_scalar('val/coco/bbox_mAP').current())

    val = runner.val_dataloader.dataset
    raw = [mmcv.imread(val.get_data_info(i)['img_path'], channel_order='rgb')
           for i in range(4)]  # num_images=4; the tiny val split has 4
    assert hook.paths['predictions'] == osp.join(runner.log_dir,
                                                 'predictions.png')
    assert_gt_drawn(hook, raw)
    assert_curves_png(hook, runner)
    log = log_text(runner)
    assert (f'Predictions on 4 val images (ground truth | prediction): '
            f'{hook.paths["predictions"]}') in log
    assert f'Loss and bbox_mAP/segm_mAP curves: {hook.paths["curves"]}' in log


def test_segmentation_run_ends_with_label_maps_and_curves(tmp_path):
    cfg = tiny_config(tmp_path / 'seg.py', max_iters=2,
                      data_root=tmp_path / 'toy_ade')
    runner = TRAIN.main([cfg, '--work-dir', str(tmp_path / 'work')])
    hook = report_hook(runner)
    assert [i for i, _ in hook.losses] == [1, 2]
    assert [i for i, _ in hook.metrics['mIoU']] == [2]
    val = runner.val_dataloader.dataset
    raw = [mmcv.imread(val.get_data_info(i)['img_path'], channel_order='rgb')
           for i in range(4)]
    assert_gt_drawn(hook, raw)
    assert_curves_png(hook, runner)
    assert 'Loss and mIoU curves: ' in log_text(runner)


def test_a_drawing_failure_is_one_warning_and_the_run_is_kept(
        tmp_path, monkeypatch, tiny_toy_data):
    from mmdet.visualization import DetLocalVisualizer

    def broken(*args, **kwargs):
        raise RuntimeError('no display')

    monkeypatch.setattr(DetLocalVisualizer, 'add_datasample', broken)
    monkeypatch.setenv('GCVIT_MM_DATA', tiny_toy_data)
    cfg = write_small_config(
        tmp_path / 'small.py', 'mask_rcnn',
        train_cfg='dict(max_epochs=1, val_interval=1)',
        default_hooks="dict(checkpoint=dict(interval=1))")
    work = tmp_path / 'work'
    runner = TRAIN.main([cfg, '--work-dir', str(work), '--cfg-options',
                         'train_dataloader.dataset.indices=2'])
    hook = report_hook(runner)
    assert osp.isfile(work / 'epoch_1.pth')
    assert 'predictions' not in hook.paths and osp.isfile(hook.paths['curves'])
    warnings = [line for line in log_text(runner).splitlines()
                if 'Run report:' in line]
    assert len(warnings) == 1
    assert ('could not draw the predictions (RuntimeError: no display); '
            'the checkpoints are saved') in warnings[0]
