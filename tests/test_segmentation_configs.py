"""The UperNet configs load, build a consistent segmentor, and give the
optimizer the intended weight decay per parameter."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG_DIR = osp.join(REPO, 'configs', 'upernet')
ADE_CONFIGS = {
    'gcvit_xt_ade20k.py': ('xtiny', 0.2),
    'gcvit_t_ade20k.py': ('tiny', 0.3),
    'gcvit_s_ade20k.py': ('small', 0.3),
    'gcvit_b_ade20k.py': ('base', 0.5),
}
ALL_CONFIGS = sorted(
    osp.basename(p) for p in glob.glob(osp.join(CONFIG_DIR, '*.py')))


def load(name: str) -> Config:
    return Config.fromfile(osp.join(CONFIG_DIR, name))


def build_segmentor(cfg: Config):
    """Build cfg.model on CPU without downloading: no pretrained weights,
    BN instead of SyncBN."""
    from mmseg.registry import MODELS
    model_cfg = cfg.model.copy()
    model_cfg.backbone.init_cfg = None
    for head in ('decode_head', 'auxiliary_head'):
        model_cfg[head].norm_cfg = dict(type='BN', requires_grad=True)
    init_default_scope('mmseg')
    return MODELS.build(model_cfg)


def test_every_config_is_covered():
    assert set(ADE_CONFIGS) <= set(ALL_CONFIGS)
    assert len(ALL_CONFIGS) > len(ADE_CONFIGS)  # the toy config too


@pytest.mark.parametrize('name', ALL_CONFIGS)
def test_config_builds_a_gcvit_upernet(name):
    cfg = load(name)
    assert cfg.default_scope == 'mmseg'
    model = build_segmentor(cfg)
    backbone = model.backbone
    assert type(backbone).__name__ == 'GCViT'
    assert type(model.decode_head).__name__ == 'UPerHead'
    assert type(model.auxiliary_head).__name__ == 'FCNHead'
    # heads read the backbone's channels (UperNet all four, FCN stride 16)
    assert list(model.decode_head.in_channels) == backbone.out_channels
    assert model.auxiliary_head.in_channels == backbone.out_channels[2]
    # every crop of the training recipe tiles into whole windows
    crop = cfg.crop_size
    assert tuple(cfg.model.data_preprocessor.size) == tuple(crop)
    for stage, window in enumerate(backbone.window_size):
        stride = 4 * 2**stage
        assert crop[0] % (stride * window) == 0, (stage, window)
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.rand(1, 3, 70, 90))
    assert [f.shape[1] for f in feats] == backbone.out_channels


@pytest.mark.parametrize('name', sorted(ADE_CONFIGS))
def test_ade20k_recipe(name):
    """The recipe of the issue: 512 crops, 160k iterations, 8x2 images,
    AdamW 6e-5 / 0.01, warm-up 1500 + poly, AMP, ImageNet weights."""
    cfg = load(name)
    arch, drop_path = ADE_CONFIGS[name]
    backbone = cfg.model.backbone
    assert backbone.arch == arch
    assert backbone.drop_path_rate == drop_path
    assert backbone.window_size == 16
    assert backbone.init_cfg.type == 'Pretrained'
    assert backbone.init_cfg.checkpoint == (
        'https://huggingface.co/nvidia/GCViT/resolve/main/'
        f'gcvit_1k_{arch}.pth.tar')
    assert cfg.crop_size == (512, 512)
    assert cfg.model.decode_head.num_classes == 150
    assert cfg.model.auxiliary_head.num_classes == 150
    assert cfg.model.decode_head.norm_cfg.type == 'SyncBN'
    assert cfg.train_dataloader.batch_size == 2
    assert cfg.train_dataloader.dataset.type == 'ADE20KDataset'
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.val_evaluator.type == 'IoUMetric'
    assert cfg.model.test_cfg.mode == 'slide'
    assert cfg.tta_model.type == 'SegTTAModel'  # multi-scale + flip test
    flips = [t for group in cfg.tta_pipeline[1].transforms for t in group
             if t.type == 'RandomFlip']
    assert [t.prob for t in flips] == [0., 1.]
    wrapper = cfg.optim_wrapper
    assert wrapper.type == 'AmpOptimWrapper'
    assert wrapper.loss_scale == 'dynamic'
    assert wrapper.optimizer.type == 'AdamW'
    assert wrapper.optimizer.lr == 6e-5
    assert wrapper.optimizer.weight_decay == 0.01
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.begin, warmup.end) == ('LinearLR', 0, 1500)
    assert (poly.type, poly.begin, poly.end, poly.power) == ('PolyLR', 1500,
                                                             160000, 1.0)


@pytest.mark.parametrize('name', ['gcvit_t_ade20k.py', 'gcvit_s_ade20k.py',
                                  'gcvit_xxt_toy_ade.py'])
def test_no_weight_decay_on_bias_tables_and_norms(name):
    """paramwise_cfg's custom keys really match our parameter names."""
    from mmengine.optim import build_optim_wrapper
    cfg = load(name)
    model = build_segmentor(cfg)
    wrapper_cfg = cfg.optim_wrapper.copy()
    wrapper_cfg.type = 'OptimWrapper'  # AMP needs CUDA; same param groups
    wrapper_cfg.pop('loss_scale', None)
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    decay = cfg.optim_wrapper.optimizer.weight_decay
    by_param = {}
    for group in wrapper.optimizer.param_groups:
        for param in group['params']:
            by_param[id(param)] = group['weight_decay']
    named = dict(model.named_parameters())
    assert len(by_param) == len(named)

    def wd(name):
        return by_param[id(named[name])]

    zero = [
        'backbone.stages.0.blocks.0.attn.relative_position_bias_table',
        'backbone.stages.2.blocks.1.attn.relative_position_bias_table',
        'backbone.stages.0.blocks.0.norm1.weight',
        'backbone.stages.3.blocks.1.norm2.bias',
        'backbone.stem.reduce.norm1.weight',
        'backbone.stages.1.downsample.norm2.weight',
        'backbone.norm0.weight',
        'backbone.norm3.bias',
    ]
    for name in zero:
        assert wd(name) == 0., name
    full = [
        'backbone.stages.0.blocks.0.attn.qkv.weight',
        'backbone.stages.0.blocks.1.attn.kv.weight',
        'backbone.stages.2.blocks.0.mlp.fc1.weight',
        'backbone.stem.conv.weight',
        'decode_head.conv_seg.weight',
    ]
    for name in full:
        assert wd(name) == decay, name
    # every bias table and every LayerNorm parameter is exempt
    layer_norms = {
        f'{m}.{p}'
        for m, mod in model.named_modules()
        if isinstance(mod, torch.nn.LayerNorm) for p in ('weight', 'bias')
    }
    tables = {n for n in named if n.endswith('relative_position_bias_table')}
    assert tables and layer_norms
    assert all(wd(n) == 0. for n in layer_norms | tables)


def test_test_tool_tta_wraps_the_segmentor():
    """`tools/test.py CONFIG CKPT --tta` runs the multi-scale + flip setting:
    the config's tta_pipeline and its segmentor inside tta_model."""
    from detection_utils import load_tool
    test_tool = load_tool('test')
    config = osp.join(CONFIG_DIR, 'gcvit_t_ade20k.py')
    cfg = test_tool.build_cfg(test_tool.parse_args([config, 'x.pth', '--tta']))
    assert cfg.model.type == 'SegTTAModel'
    assert cfg.model.module.backbone.type == 'GCViT'
    assert cfg.test_dataloader.dataset.pipeline == load(
        'gcvit_t_ade20k.py').tta_pipeline
    plain = test_tool.build_cfg(test_tool.parse_args([config, 'x.pth']))
    assert plain.model.type == 'EncoderDecoder'
