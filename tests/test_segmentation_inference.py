"""Slide inference with GC ViT UperNet on images whose sizes are multiples
of neither 32 nor the window: a full-size map comes back."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from test_segmentation_configs import CONFIG_DIR, build_segmentor

# Also run on the older stacks by CI's compatibility run (pytest -m compat).
pytestmark = pytest.mark.compat

TINY_ARCH = dict(dim=16, depths=(2, 2, 2, 2),
                 num_heads=(1, 2, 4, 8), mlp_ratio=2., layer_scale=None)


def tiny_segmentor(config: str):
    """The config's segmentor (its window, crop, stride and test mode) with
    a dim-16 GC ViT and thin heads."""
    cfg = Config.fromfile(osp.join(CONFIG_DIR, config))
    cfg.model.backbone.arch = TINY_ARCH
    cfg.model.decode_head.update(in_channels=[16, 32, 64, 128], channels=16)
    cfg.model.auxiliary_head.update(in_channels=64, channels=16)
    model = build_segmentor(cfg)
    model.init_weights()
    return model.eval(), cfg


def predict(model, height, width, seed=0):
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, height, width), generator=gen,
                          dtype=torch.uint8)
    sample = SegDataSample(metainfo=dict(
        img_shape=(height, width), ori_shape=(height, width)))
    with torch.no_grad():
        return model.test_step(dict(inputs=[image],
                                    data_samples=[sample]))[0]


@pytest.mark.parametrize('config,size', [
    # toy: 128 crops, stride 85, window 4: 2 x 3 overlapping crops
    ('gcvit_xxt_toy_ade.py', (150, 211)),
    # toy: 100 rows < the crop, so the crops themselves are 100 x 128
    ('gcvit_xxt_toy_ade.py', (100, 221)),
    # ADE20K: 512 crops, stride 341, window 16: 2 x 2 crops
    ('gcvit_xt_ade20k.py', (530, 700)),
])
def test_slide_inference_returns_a_full_size_map(config, size):
    model, cfg = tiny_segmentor(config)
    height, width = size
    assert cfg.model.test_cfg.mode == 'slide'
    crop = cfg.model.test_cfg.crop_size
    assert height % 32 and width % 32
    assert any(s % w for s in size for w in model.backbone.window_size)
    assert size != tuple(crop)
    result = predict(model, height, width)
    num_classes = cfg.model.decode_head.num_classes
    assert result.seg_logits.data.shape == (num_classes, height, width)
    assert result.pred_sem_seg.data.shape == (1, height, width)
    assert torch.isfinite(result.seg_logits.data).all()
    assert result.pred_sem_seg.data.max() < num_classes
    assert torch.equal(result.pred_sem_seg.data[0],
                       result.seg_logits.data.argmax(0))


def test_slide_equals_whole_when_the_image_fits_one_crop():
    """Under one crop, slide inference is one forward of the whole odd-sized
    image: the same logits as mode='whole'."""
    model, _ = tiny_segmentor('gcvit_xxt_toy_ade.py')
    slide = predict(model, 90, 117, seed=1).seg_logits.data
    model.test_cfg.mode = 'whole'
    whole = predict(model, 90, 117, seed=1).seg_logits.data
    assert slide.shape == whole.shape == (7, 90, 117)
    torch.testing.assert_close(slide, whole, rtol=1e-5, atol=1e-5)


def test_multi_scale_flip_test_returns_a_full_size_map(tmp_path):
    """The multi-scale + flip setting (tools/test.py --tta): the config's
    tta_pipeline (6 scales x 2 flips) and tta_model around its segmentor."""
    import cv2
    import numpy as np
    from mmengine.dataset import pseudo_collate
    from mmseg.registry import MODELS, TRANSFORMS
    model, cfg = tiny_segmentor('gcvit_t_ade20k.py')
    tta = MODELS.build(dict(cfg.tta_model, module=model))
    assert type(tta).__name__ == 'SegTTAModel'
    pipeline = [TRANSFORMS.build(t) for t in cfg.tta_pipeline]
    height, width = 75, 94
    rng = np.random.RandomState(0)
    cv2.imwrite(str(tmp_path / 'a.jpg'),
                rng.randint(0, 256, (height, width, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / 'a.png'),
                rng.randint(0, 151, (height, width), dtype=np.uint8))
    data = dict(img_path=str(tmp_path / 'a.jpg'),
                seg_map_path=str(tmp_path / 'a.png'), reduce_zero_label=True,
                seg_fields=[])
    for transform in pipeline:
        data = transform(data)
    scales = {tuple(x.shape[1:]) for x in data['inputs']}
    assert len(data['inputs']) == 12 and len(scales) == 6
    with torch.no_grad():
        result = tta.test_step(pseudo_collate([data]))[0]
    assert result.pred_sem_seg.data.shape == (1, height, width)
    assert result.pred_sem_seg.data.max() < 150
