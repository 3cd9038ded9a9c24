"""The toy COCO generator writes its folder once and, like the toy ADE20K
one, refuses a folder made with other settings (or not made by it)."""
import os

import pytest

from gcvit_mm.datasets.toy_coco import ensure_toy_coco
from gcvit_mm.utils import UserError

SMALL = dict(num_train=2, num_val=1, img_size=64, min_side=16, max_side=32,
             seed=2)


def test_set_is_reused_and_other_settings_are_refused(tmp_path):
    root = str(tmp_path / 'toy_coco')
    assert ensure_toy_coco(root, **SMALL) == root
    image = os.path.join(root, 'train', '000000.jpg')
    mtime = os.stat(image).st_mtime_ns
    assert sorted(os.listdir(tmp_path)) == ['toy_coco']  # no temporary left
    ensure_toy_coco(root, **SMALL)  # the same settings: nothing rewritten
    assert os.stat(image).st_mtime_ns == mtime
    with pytest.raises(UserError, match=r"was generated with .*'num_train'"
                       r": 2.* but .*'num_train': 3.* remove the folder"):
        ensure_toy_coco(root, **dict(SMALL, num_train=3))
    # a dataset that names no settings (gen_cfg=None) takes the set there
    assert ensure_toy_coco(root, any_settings=True) == root
    assert os.stat(image).st_mtime_ns == mtime
    os.makedirs(tmp_path / 'other')
    with pytest.raises(UserError, match='not made by the toy COCO'):
        ensure_toy_coco(str(tmp_path / 'other'), **SMALL)
    with pytest.raises(TypeError, match=r"unknown toy COCO settings \['sed'"):
        ensure_toy_coco(str(tmp_path / 'new'), sed=1)


def test_dataset_passes_its_gen_cfg(tmp_path):
    from mmengine.registry import init_default_scope

    from gcvit_mm.datasets.toy_coco import ToyShapesCocoDataset
    init_default_scope('mmdet')
    root = str(tmp_path / 'toy_coco')
    ensure_toy_coco(root, **SMALL)
    kwargs = dict(data_root=root, ann_file='annotations/instances_val.json',
                  data_prefix=dict(img='val/'), test_mode=True, pipeline=[])
    assert len(ToyShapesCocoDataset(gen_cfg=SMALL, **kwargs)) == 1
    assert len(ToyShapesCocoDataset(**kwargs)) == 1  # any settings
    with pytest.raises(UserError, match='was generated with'):
        ToyShapesCocoDataset(gen_cfg=dict(SMALL, seed=5), **kwargs)
