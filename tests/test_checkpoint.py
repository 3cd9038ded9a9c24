"""Loading the paper's, timm's and our checkpoints safely."""
import logging
import os
import subprocess
import sys

import pytest
import torch

from gcvit_mm import GCViT
from gcvit_mm.checkpoint import convert_state_dict, detect_format
from checkpoint_formats import to_paper, to_timm
from conftest import SMALL_ARCH, randomize_, stage_outputs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pretrained(path, **kwargs):
    model = GCViT(SMALL_ARCH, init_cfg=dict(type='Pretrained',
                                            checkpoint=str(path)), **kwargs)
    model.init_weights()
    return model.eval()


@pytest.fixture(scope='module')
def source():
    """A randomised classifier-like model and a multi-window input."""
    model = randomize_(GCViT(SMALL_ARCH, window_size=3)).eval()
    x = torch.rand(2, 3, 96, 72)
    return model, x


@pytest.mark.parametrize('fmt, writer', [('paper', to_paper),
                                         ('timm', to_timm)])
def test_paper_and_timm_checkpoints_load_to_the_same_model(
        tmp_path, source, fmt, writer):
    model, x = source
    path = tmp_path / f'{fmt}.pth'
    torch.save(writer(model.state_dict()), path)
    saved = torch.load(path, weights_only=False)
    assert detect_format(saved.get('state_dict', saved)) == fmt
    loaded = pretrained(path, window_size=3)
    for a, b in zip(stage_outputs(model, x), stage_outputs(loaded, x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for name, param in model.state_dict().items():
        if not name.startswith('norm'):  # output norms are new layers
            assert torch.equal(param, loaded.state_dict()[name]), name


def test_early_paper_layout_without_q_global_gen(source):
    """The paper's first release hung `to_q_global` on the level itself."""
    model, _ = source
    paper = to_paper(model.state_dict())['state_dict']
    early = {k.replace('.q_global_gen.', '.'): v for k, v in paper.items()}
    assert any('.to_q_global.' in k for k in early)
    converted, fmt, _ = convert_state_dict(early)
    assert fmt == 'paper'
    assert converted.keys() == {k for k in model.state_dict()
                                if not k.startswith('norm')}


def test_loading_logs_missing_and_dropped_keys(tmp_path, source, caplog):
    model, _ = source
    path = tmp_path / 'timm.pth'
    torch.save(to_timm(model.state_dict()), path)
    from gcvit_mm.checkpoint import load_pretrained
    with caplog.at_level('INFO'):
        load_pretrained(GCViT(SMALL_ARCH), str(path),
                        logging.getLogger('gcvit_test'))
    text = caplog.text
    assert 'timm-format' in text
    assert "missing keys (left at their initial values): ['norm0.weight'" in text
    assert 'stages.3.norm.weight' in text and 'head.fc.weight' in text


def test_window_change_resizes_bias_tables_bicubically(tmp_path, source):
    model, x = source
    path = tmp_path / 'paper.pth'
    torch.save(to_paper(model.state_dict()), path)
    loaded = pretrained(path, window_size=8)
    table = loaded.stages[1].blocks[0].attn.relative_position_bias_table
    assert table.shape == (15 * 15, 2)
    src = model.stages[1].blocks[0].attn.relative_position_bias_table
    expected = torch.nn.functional.interpolate(
        src.T.reshape(1, 2, 5, 5), size=(15, 15), mode='bicubic')
    torch.testing.assert_close(table.detach(), expected.reshape(2, -1).T)
    # The centre (zero offset) keeps its value: corners align under resizing.
    with torch.no_grad():
        outs = loaded(torch.rand(1, 3, 70, 50))
    assert all(torch.isfinite(o).all() for o in outs)


def test_checkpoint_of_another_arch_is_a_clear_error(tmp_path, source):
    model, _ = source
    path = tmp_path / 'small.pth'
    torch.save(to_timm(model.state_dict()), path)
    other = GCViT(dict(SMALL_ARCH, dim=64), init_cfg=dict(
        type='Pretrained', checkpoint=str(path)))
    with pytest.raises(ValueError) as err:
        other.init_weights()
    msg = str(err.value)
    assert 'does not fit this GCViT' in msg
    assert 'stem.conv.weight: checkpoint (32, 3, 3, 3) vs model (64, 3, 3, 3)' in msg
    assert 'Set `arch` to match the checkpoint' in msg


def test_corrupt_missing_and_foreign_checkpoints(tmp_path):
    corrupt = tmp_path / 'corrupt.pth'
    corrupt.write_bytes(b'PK\x03\x04 not really a zip')
    with pytest.raises(ValueError, match='Cannot read checkpoint.*complete'):
        pretrained(corrupt)
    with pytest.raises(FileNotFoundError, match='checkpoint not found'):
        pretrained(tmp_path / 'missing.pth')
    foreign = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match='Not a GC ViT checkpoint'):
        pretrained(foreign)


class Payload:
    """Unpickling this would run code; safe loading must refuse it."""

    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null', ))


def test_checkpoint_that_would_run_code_is_refused(tmp_path, source):
    model, _ = source
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': to_timm(model.state_dict()), 'x': Payload()},
               path)
    with pytest.raises(ValueError, match='Refusing to load.*safe loading'):
        pretrained(path)


def test_detector_checkpoint_backbone_prefix_is_understood(source):
    model, _ = source
    sd = {f'backbone.{k}': v for k, v in model.state_dict().items()}
    sd['rpn_head.conv.weight'] = torch.zeros(1)
    converted, fmt, _ = convert_state_dict(sd)
    assert fmt == 'gcvit_mm' and converted.keys() == model.state_dict().keys()


def test_convert_tool_round_trip(tmp_path, source):
    model, x = source
    src, dst = tmp_path / 'paper.pth.tar', tmp_path / 'ours.pth'
    torch.save(to_paper(model.state_dict()), src)
    result = subprocess.run(
        [sys.executable, 'tools/convert_checkpoint.py', str(src), str(dst)],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert 'paper format' in result.stdout
    saved = torch.load(dst, weights_only=True)
    assert detect_format(saved['state_dict']) == 'gcvit_mm'
    loaded = pretrained(dst, window_size=3)
    for a, b in zip(stage_outputs(model, x), stage_outputs(loaded, x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    bad = subprocess.run(
        [sys.executable, 'tools/convert_checkpoint.py', str(tmp_path / 'no'),
         str(dst)], cwd=ROOT, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.startswith('error: ')
    assert 'Traceback' not in bad.stderr
