"""RunReportHook, set in both toy configs: when training ends, the log dir
holds predictions drawn next to the ground truth and the loss / metric
curves, the last log lines say where, and a drawing failure costs nothing.

Each test trains a tiny run of the real toy config (so the test fails when
the config loses the hook) through tools/train.py, in-process."""
import os.path as osp

import mmcv
import numpy as np
import pytest

from detection_utils import load_tool, write_small_config
from gcvit_mm.engine import RunReportHook
from test_segmentation_train import tiny_config

TRAIN = load_tool('train')
NUM_IMAGES = 4  # the hook's default; the tiny val splits have 4 images
CHANGED = 40  # a pixel whose channels moved by more than this was drawn on


@pytest.fixture
def det_env(tiny_toy_data, monkeypatch):
    # configs read $GCVIT_MM_DATA when they are loaded
    monkeypatch.setenv('GCVIT_MM_DATA', tiny_toy_data)
    return tiny_toy_data


def train_tiny_detection(tmp_path, max_epochs: int, val_begin: int = 1):
    """The toy Mask R-CNN config, small, on 2 train images (1 iteration per
    epoch) and the 4 val images, evaluated every epoch from ``val_begin``."""
    cfg = write_small_config(
        tmp_path / 'small.py', 'mask_rcnn',
        train_cfg=f'dict(max_epochs={max_epochs}, val_interval=1, '
        f'val_begin={val_begin})',
        default_hooks="dict(checkpoint=dict(interval=1))")
    return TRAIN.main([cfg, '--work-dir', str(tmp_path / 'work'),
                       '--cfg-options', 'train_dataloader.dataset.indices=2'])


def report_hook(runner) -> RunReportHook:
    hooks = [h for h in runner.hooks if isinstance(h, RunReportHook)]
    assert len(hooks) == 1, 'the toy config sets RunReportHook'
    return hooks[0]


def log_lines(runner) -> list:
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return [line.rstrip('\n') for line in f if line.strip()]


def val_images(runner) -> list:
    """The first NUM_IMAGES val images as read from disk, (H, W, 3) RGB,
    with their data infos."""
    dataset = runner.val_dataloader.dataset
    infos = [dataset.get_data_info(i) for i in range(NUM_IMAGES)]
    return [(mmcv.imread(info['img_path'], channel_order='rgb'), info)
            for info in infos]


def drawn_gt_halves(hook, raws) -> list:
    """predictions.png cut into its cells' ground-truth halves, after
    checking its size: cell k is image k drawn as ground truth | prediction
    (twice its width), two cells per row."""
    grid = mmcv.imread(hook.paths['predictions'], channel_order='rgb')
    cell_h = max(raw.shape[0] for raw in raws)
    cell_w = 2 * max(raw.shape[1] for raw in raws)
    rows = -(-len(raws) // 2)
    assert grid.shape == (rows * cell_h, 2 * cell_w, 3)
    halves = []
    for k, raw in enumerate(raws):
        r, c = divmod(k, 2)
        halves.append(grid[r * cell_h:r * cell_h + raw.shape[0],
                           c * cell_w:c * cell_w + raw.shape[1]])
    return halves


def changed_pixels(drawn: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """(H, W) bool: where the drawing differs from the raw image."""
    return np.abs(drawn.astype(int) - raw.astype(int)).max(-1) > CHANGED


def assert_curves_png(hook, runner):
    assert hook.paths['curves'] == osp.join(runner.log_dir, 'curves.png')
    assert mmcv.imread(hook.paths['curves']).shape == (400, 1100, 3)


def test_detection_run_ends_with_predictions_and_curves(tmp_path, det_env):
    runner = train_tiny_detection(tmp_path, max_epochs=2)
    hook = report_hook(runner)
    assert [i for i, _ in hook.losses] == [1, 2]  # one per iteration
    assert [i for i, _ in hook.metrics['coco/bbox_mAP']] == [1, 2]
    assert 'coco/segm_mAP' in hook.metrics
    # the value the last evaluation gave (recorded by mmengine's
    # RuntimeInfoHook from the same after_val_epoch call)
    assert hook.metrics['coco/bbox_mAP'][-1][1] == pytest.approx(
        runner.message_hub.get_scalar('val/coco/bbox_mAP').current())

    assert hook.paths['predictions'] == osp.join(runner.log_dir,
                                                 'predictions.png')
    images = val_images(runner)
    halves = drawn_gt_halves(hook, [raw for raw, _ in images])
    for (raw, info), drawn in zip(images, halves):
        # boxes and masks drawn in the original image's coordinates: inside
        # the GT boxes much changed, away from them (3 px: box lines) little
        changed = changed_pixels(drawn, raw)
        in_boxes, near_boxes = (np.zeros(raw.shape[:2], bool)
                                for _ in range(2))
        for instance in info['instances']:
            x1, y1, x2, y2 = np.round(instance['bbox']).astype(int)
            in_boxes[y1:y2, x1:x2] = True
            near_boxes[max(y1 - 3, 0):y2 + 3, max(x1 - 3, 0):x2 + 3] = True
        assert changed[in_boxes].mean() > 0.3, info['img_path']
        assert changed[~near_boxes].mean() < 0.02, info['img_path']

    assert_curves_png(hook, runner)
    # the run's last log lines
    assert log_lines(runner)[-2].endswith(
        f'Predictions on {NUM_IMAGES} val images (ground truth | '
        f'prediction): {hook.paths["predictions"]}')
    assert log_lines(runner)[-1].endswith(
        f'Loss and bbox_mAP/segm_mAP curves: {hook.paths["curves"]}')


def test_segmentation_run_ends_with_label_maps_and_curves(tmp_path):
    cfg = tiny_config(tmp_path / 'seg.py', max_iters=2,
                      data_root=tmp_path / 'toy_ade')
    runner = TRAIN.main([cfg, '--work-dir', str(tmp_path / 'work')])
    hook = report_hook(runner)
    assert [i for i, _ in hook.losses] == [1, 2]
    assert [i for i, _ in hook.metrics['mIoU']] == [2]
    assert hook.metrics['mIoU'][-1][1] == pytest.approx(
        runner.message_hub.get_scalar('val/mIoU').current())

    images = val_images(runner)
    halves = drawn_gt_halves(hook, [raw for raw, _ in images])
    for (raw, info), drawn in zip(images, halves):
        # the GT label map is blended in where it has a class (ADE label
        # 0, "unlabeled", is ignored: 255 after reduce_zero_label)
        labels = mmcv.imread(info['seg_map_path'], flag='unchanged')
        labeled = labels > 0
        assert labeled.mean() > 0.5
        assert changed_pixels(drawn, raw)[labeled].mean() > 0.5

    assert_curves_png(hook, runner)
    assert log_lines(runner)[-1].endswith(
        f'Loss and mIoU curves: {hook.paths["curves"]}')


def test_a_drawing_failure_is_one_warning_and_the_run_is_kept(
        tmp_path, det_env, monkeypatch):
    from mmdet.visualization import DetLocalVisualizer

    def broken(*args, **kwargs):
        raise RuntimeError('no display')

    monkeypatch.setattr(DetLocalVisualizer, 'add_datasample', broken)
    # no evaluation (it would begin at epoch 2): predictions are drawn anyway
    runner = train_tiny_detection(tmp_path, max_epochs=1, val_begin=2)
    hook = report_hook(runner)
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')
    assert 'predictions' not in hook.paths
    assert osp.isfile(hook.paths['curves'])
    warnings = [line for line in log_lines(runner) if 'WARNING' in line
                and 'Run report:' in line]
    assert len(warnings) == 1
    assert warnings[0].endswith(
        'Run report: could not draw the predictions (RuntimeError: no '
        'display); the checkpoints are saved')
    assert log_lines(runner)[-1].endswith(
        f'Loss curve (no validation metric): {hook.paths["curves"]}')
