"""The model zoo: model-index.yml and configs/*/metafile.yml (mmdet's
format, what mim and mmengine.hub read) list every config once, with its
task, data, measured params and FLOPs, the ImageNet weights it starts from,
and the paper's figures marked as the paper's; every listed config is read
by ``mmengine.hub.get_config('gcvit_mm::...')`` and builds."""
import glob
import os.path as osp

import pytest
import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    osp.relpath(p, osp.join(REPO, 'configs'))
    for p in glob.glob(osp.join(REPO, 'configs', '*', '*.py'))
    if '_base_' not in p)
# The paper's COCO and ADE20K figures (ICML 2023; ADE20K: the earlier
# arXiv table, see configs/upernet/README.md).
PAPER = {
    'mask_rcnn/gcvit_t_coco.py': {'box AP (paper)': 47.9,
                                  'mask AP (paper)': 43.2},
    'cascade/gcvit_t_coco.py': {'box AP (paper)': 51.6,
                                'mask AP (paper)': 44.6},
    'cascade/gcvit_s_coco.py': {'box AP (paper)': 52.4,
                                'mask AP (paper)': 45.4},
    'cascade/gcvit_b_coco.py': {'box AP (paper)': 52.9,
                                'mask AP (paper)': 45.8},
    'upernet/gcvit_t_ade20k.py': {'mIoU (paper)': 47.0},
    'upernet/gcvit_s_ade20k.py': {'mIoU (paper)': 48.3},
    'upernet/gcvit_b_ade20k.py': {'mIoU (paper)': 49.2},
}


def load_yaml(rel):
    with open(osp.join(REPO, rel)) as f:
        return yaml.safe_load(f)


def models():
    """{config path under configs/: metafile entry} of every metafile."""
    entries = {}
    for metafile in load_yaml('model-index.yml')['Import']:
        for model in load_yaml(metafile)['Models']:
            rel = model['Config'].partition('/')[-1]
            assert rel not in entries, f'{rel} listed twice'
            entries[rel] = model
    return entries


MODELS = models()


def test_every_config_is_listed_and_every_listed_config_exists():
    assert sorted(MODELS) == CONFIGS
    folders = sorted({c.split('/')[0] for c in CONFIGS})
    assert load_yaml('model-index.yml')['Import'] == [
        f'configs/{f}/metafile.yml' for f in folders]
    for folder in folders:
        assert osp.isfile(osp.join(REPO, 'configs', folder, 'README.md'))


@pytest.mark.parametrize('rel', CONFIGS)
def test_entry_states_what_mmdet_metafiles_state(rel):
    model = MODELS[rel]
    folder = rel.split('/')[0]
    assert model['README'] == f'configs/{folder}/README.md'
    assert model['Paper']['URL'] == 'https://arxiv.org/abs/2206.09959'
    meta = model['Metadata']
    assert meta['Training Data'] in ('COCO', 'ADE20K') or \
        meta['Training Data'].startswith('Toy ')
    assert isinstance(meta['Parameters'], int) and meta['Parameters'] > 1e6
    assert meta['FLOPs'] >= meta['FLOPs without Attention Matmuls'] > 1e9
    weights = meta['Backbone Weights']
    if meta['Training Data'].startswith('Toy '):
        assert weights == 'none (trained from scratch)'
    else:
        assert weights.startswith(
            'https://huggingface.co/nvidia/GCViT/resolve/main/gcvit_')
    metrics = {k: v for result in model.get('Results', [])
               for k, v in result['Metrics'].items()}
    # The paper's figures, marked as the paper's; figures without the mark
    # are ours, measured on the toy data only.
    assert {k: v for k, v in metrics.items()
            if k.endswith('(paper)')} == PAPER.get(rel, {})
    if any(not k.endswith('(paper)') for k in metrics):
        assert meta['Training Data'].startswith('Toy ')


@pytest.fixture(scope='module')
def hub():
    """mmengine.hub reads gcvit_mm:: through the installed package's .mim
    (the editable install links it to configs/)."""
    import gcvit_mm
    mim = osp.join(osp.dirname(gcvit_mm.__file__), '.mim')
    if not osp.isfile(osp.join(mim, 'model-index.yml')):
        pytest.fail(f'{mim} has no model-index.yml: reinstall gcvit_mm '
                    f'(pip install -e .) so that setup.py links it')
    from mmengine.hub import get_config
    return get_config


@pytest.mark.parametrize('rel', CONFIGS)
def test_hub_reads_and_builds_every_listed_config(hub, rel):
    from mmengine.registry import MODELS as REGISTRY
    from mmengine.registry import DefaultScope
    cfg = hub(f'gcvit_mm::{rel}')
    assert osp.realpath(cfg.filename) == osp.join(REPO, 'configs', rel)
    cfg.model.backbone.pop('init_cfg', None)  # no download
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        model = REGISTRY.build(cfg.model)
    params = sum(p.numel() for p in model.parameters())
    # the count the metafile states (tools/get_flops.py counts the same)
    assert params == MODELS[rel]['Metadata']['Parameters']
