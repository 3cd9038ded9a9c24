"""Numerical parity with timm's GlobalContextVit (timm 1.0.31).

The fixture (tests/data/timm_gcvit_fixture.npz, made by
tools/make_timm_fixture.py in a separate timm environment) holds a reduced
GC ViT's timm-format weights, a batch of 2 images and timm's stage outputs.
The weights go through the user's path: a timm-format .pth file loaded by
``init_cfg=dict(type='Pretrained')``.
"""
import os.path as osp

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gcvit_mm import GCViT
from conftest import stage_outputs

# Also run on the older stacks by CI's compatibility run (pytest -m compat).
pytestmark = pytest.mark.compat

FIXTURE = osp.join(osp.dirname(__file__), 'data', 'timm_gcvit_fixture.npz')
ARCH = dict(dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
            mlp_ratio=1., layer_scale=1.0)
TOLERANCE = 1e-4

# Filled by the tests, printed at the end of the run by conftest.py.
MEASURED = {}


@pytest.fixture(scope='module')
def fixture():
    data = np.load(FIXTURE)
    weights = {
        key[2:]: torch.from_numpy(data[key].astype(np.float32) * data['s' +
                                                                     key[1:]])
        for key in data.files if key.startswith('w/')
    }
    return data, weights


@pytest.fixture(scope='module')
def model(fixture, tmp_path_factory):
    _, weights = fixture
    path = tmp_path_factory.mktemp('timm') / 'gcvit_timm.pth'
    torch.save(weights, path)
    model = GCViT(ARCH, window_size=(3, 3, 6, 3), pretrain_img_size=96,
                  init_cfg=dict(type='Pretrained', checkpoint=str(path)))
    model.init_weights()
    return model.eval()


def test_stage_outputs_match_timm_at_batch_2(fixture, model):
    data, weights = fixture
    x = torch.from_numpy(data['x'].astype(np.float32))
    assert x.shape[0] == 2
    outs = stage_outputs(model, x)
    # timm's last stage ends with the classifier's norm; apply it to compare.
    final = F.layer_norm(outs[3].permute(0, 2, 3, 1), (outs[3].shape[1], ),
                         weights['stages.3.norm.weight'],
                         weights['stages.3.norm.bias'], eps=1e-5)
    ours = {f'stage{i}': o for i, o in enumerate(outs)}
    ours['final'] = final.permute(0, 3, 1, 2)
    for name, out in ours.items():
        ref = torch.from_numpy(data[f'batched/{name}'])
        assert out.shape == ref.shape, name
        diff = (out - ref).abs().max().item()
        MEASURED[name] = (diff, ref.abs().max().item())
        assert diff < TOLERANCE, f'{name}: max |ours - timm| = {diff:.2e}'


def test_outputs_do_not_depend_on_batch_composition(fixture, model):
    """timm per image (batch 1) agrees with our batch of 2: no image sees
    another image's global tokens."""
    data, _ = fixture
    x = torch.from_numpy(data['x'].astype(np.float32))
    outs = stage_outputs(model, x)
    for i, out in enumerate(outs):
        ref = torch.from_numpy(data[f'per_image/stage{i}'])
        torch.testing.assert_close(out, ref, rtol=0, atol=TOLERANCE)


def test_global_tokens_match_timm(fixture, model):
    data, _ = fixture
    x = torch.from_numpy(data['x'].astype(np.float32))
    tokens = []
    hooks = [s.token_generator.register_forward_hook(
        lambda m, i, o: tokens.append(o)) for s in model.stages]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    for i, tok in enumerate(tokens):
        ref = torch.from_numpy(data[f'debug/per_image/global_query{i}'])
        w = model.window_size[i]
        ours = tok.transpose(1, 2).reshape(2, -1, w, w)
        torch.testing.assert_close(ours, ref, rtol=0, atol=TOLERANCE)
