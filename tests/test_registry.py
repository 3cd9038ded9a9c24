"""GCViT builds from configs under the mmdet and the mmseg scope."""
import textwrap

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope

# Also run on the older stacks by CI's compatibility run (pytest -m compat).
pytestmark = pytest.mark.compat

BACKBONE = ("dict(_delete_=True, type='GCViT', arch='xxtiny', window_size=24, "
            "drop_path_rate=0.1)")
CONFIGS = {
    'mmdet': f'''
        _base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
        custom_imports = dict(imports=['gcvit_mm'], allow_failed_imports=False)
        model = dict(backbone={BACKBONE},
                     neck=dict(in_channels=[64, 128, 256, 512]))
    ''',
    'mmseg': f'''
        _base_ = 'mmseg::_base_/models/upernet_swin.py'
        custom_imports = dict(imports=['gcvit_mm'], allow_failed_imports=False)
        norm_cfg = dict(type='BN', requires_grad=True)
        model = dict(
            data_preprocessor=dict(size=(64, 64)),
            backbone={BACKBONE},
            decode_head=dict(in_channels=[64, 128, 256, 512], norm_cfg=norm_cfg),
            auxiliary_head=dict(in_channels=256, norm_cfg=norm_cfg))
    ''',
}


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_backbone_builds_in_a_full_model_under_each_scope(tmp_path, scope):
    path = tmp_path / f'{scope}_gcvit.py'
    path.write_text(textwrap.dedent(CONFIGS[scope]))
    cfg = Config.fromfile(str(path))  # imports gcvit_mm (custom_imports)
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg.model)
    assert type(model.backbone).__name__ == 'GCViT'
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 64, 96))
    assert feats[0].shape[1] in (64, 256)  # backbone (mmseg) / FPN (mmdet)
    assert len(feats) >= 4


@pytest.mark.parametrize('scope', ['mmdet', 'mmseg'])
def test_registry_lookup_by_name(scope):
    import gcvit_mm  # noqa: F401
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        backbone = registry.build(dict(type='GCViT', arch='xxtiny'))
    assert backbone.out_channels == [64, 128, 256, 512]
