"""The detection and segmentation toy configs (the README's main jobs), as
they are, through tools/train.py for 2 iterations then evaluation: what the
compatibility run checks on each supported stack. Data: the tiny toy COCO
set, and a small toy ADE set generated with the config's generator."""
import re

import pytest

from detection_utils import run_tool
from gcvit_mm.checkpoint import load_checkpoint_file

pytestmark = pytest.mark.compat


def _train(args, data_root, work):
    result = run_tool(['train.py', *args[:1], '--work-dir', work,
                       '--cfg-options', *args[1:]], data_root)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    return log


def test_mask_rcnn_toy_config_trains_two_iterations_and_evaluates(
        tmp_path, tiny_toy_data):
    log = _train([
        'configs/mask_rcnn/gcvit_xxt_shapes.py',
        'train_dataloader.dataset.indices=4', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=1', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1'], tiny_toy_data, tmp_path)
    assert re.search(r'Epoch\(train\) \[1\]\[2/2\]', log), log[-3000:]
    assert not re.search(r'Epoch\(train\) \[1\]\[3/', log)
    # pycocotools' summary for both tasks on the 4 val images
    for task in ('bbox', 'segm'):
        assert re.search(rf'coco/{task}_mAP: -?\d+\.\d+', log), log[-3000:]
    saved = load_checkpoint_file(str(tmp_path / 'epoch_1.pth'))
    assert saved['meta']['iter'] == 2 and saved['meta']['epoch'] == 1


def test_upernet_toy_config_trains_two_iterations_and_evaluates(tmp_path):
    gen = ['num_train=4', 'num_val=2']
    log = _train([
        'configs/upernet/gcvit_xxt_toy_ade.py', 'train_cfg.max_iters=2',
        'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2',
        'default_hooks.logger.interval=1', 'train_dataloader.batch_size=2',
        *[f'{loader}.{option}' for loader in ('train_dataloader',
                                              'val_dataloader')
          for option in ('num_workers=0', 'persistent_workers=False')],
        *[f'{loader}.dataset.gen_cfg.{g}' for loader in (
            'train_dataloader', 'val_dataloader') for g in gen]],
        str(tmp_path / 'data'), tmp_path / 'work')
    assert re.search(r'Iter\(train\) \[2/2\]', log), log[-3000:]
    assert re.search(r'Iter\(val\) \[2/2\]', log), log[-3000:]
    assert re.search(r'mIoU: \d+\.\d+', log), log[-3000:]
    saved = load_checkpoint_file(str(tmp_path / 'work' / 'iter_2.pth'))
    assert saved['meta']['iter'] == 2
