"""Loading the paper's, timm's and our checkpoints safely."""
import logging
import os
import subprocess
import sys

import pytest
import torch

from gcvit_mm import GCViT
from gcvit_mm.checkpoint import (CheckpointError, convert_state_dict,
                                 detect_format)
from checkpoint_formats import to_paper, to_timm
from conftest import SMALL_ARCH, randomize_, stage_outputs

# Also run on the older stacks by CI's compatibility run (pytest -m compat).
pytestmark = pytest.mark.compat

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


class OpenPayload:
    """Pickles as io.open(...): not blocked by module, just not allowed."""

    def __reduce__(self):
        return (open, ('/dev/null', 'r'))


@pytest.mark.parametrize('payload, name', [(Payload(), 'posix.system'),
                                           (OpenPayload(), 'io.open')])
def test_checkpoint_that_would_run_code_is_refused_naming_the_global(
        tmp_path, source, payload, name):
    model, _ = source
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': to_timm(model.state_dict()), 'x': payload},
               path)
    with pytest.raises(CheckpointError) as err:
        pretrained(path)
    msg = str(err.value)
    assert msg.startswith(
        f'refusing to load {path}: it holds a Python object that safe '
        f'loading does not allow ({name}); only tensors')
    assert "Re-save just its state_dict" in msg
    assert 'weights_only' not in msg and '\n' not in msg


def test_refused_global_parses_torch_and_resolver_messages():
    from gcvit_mm.checkpoint import refused_global
    wrapped = ('Weights only load failed. ...\n\tWeightsUnpickler error: '
               'Unsupported global: GLOBAL io.open was not an allowed global '
               'by default. Please use ...')
    assert refused_global(wrapped) == 'io.open'
    assert refused_global('Trying to load unsupported GLOBAL posix.system '
                          'whose module posix is blocked.') == 'posix.system'
    assert refused_global("refusing getattr(<class 'x.H'>, '__init__') "
                          'while loading a checkpoint') == (
                              "getattr(<class 'x.H'>, '__init__')")
    assert refused_global('refusing to set the state of HistoryBuffer while '
                          'loading a checkpoint') == 'state of HistoryBuffer'
    assert refused_global('Unsupported operand 149') is None


def _arch_checkpoint(tmp_path, arch):
    path = tmp_path / f'{arch}.pth'
    torch.save({'state_dict': GCViT(arch).state_dict()}, path)
    return path


def test_weights_of_an_arch_with_fewer_blocks_are_an_error(tmp_path):
    """xxtiny (2, 2, 6, 2) into xtiny (3, 4, 6, 5): same width, so every
    shape fits, but 9 blocks would stay random."""
    path = _arch_checkpoint(tmp_path, 'xxtiny')
    model = GCViT('xtiny', init_cfg=dict(type='Pretrained',
                                         checkpoint=str(path)))
    with pytest.raises(CheckpointError) as err:
        model.init_weights()
    assert str(err.value) == (
        f"Checkpoint {str(path)!r} (gcvit_mm format) lacks 78 of the 300 "
        f"tensors of this GCViT (stages.0.blocks.2.*, stages.1.blocks.2.*, "
        f"stages.1.blocks.3.*, stages.3.blocks.2.*, stages.3.blocks.3.* "
        f"(+1 more)): it is for another arch: its depths are (2, 2, 6, 2), "
        f"as arch 'xxtiny', this model's (3, 4, 6, 5). Set `arch` to match "
        f"the checkpoint, or load it partially on purpose with init_cfg="
        f"dict(type='Pretrained', checkpoint=..., strict=False)")


def test_weights_of_an_arch_with_more_blocks_are_an_error(tmp_path):
    path = _arch_checkpoint(tmp_path, 'xtiny')
    model = GCViT('xxtiny', init_cfg=dict(type='Pretrained',
                                          checkpoint=str(path)))
    with pytest.raises(CheckpointError,
                       match=r"has 78 tensors this GCViT lacks "
                       r"\(stages\.0\.blocks\.2\.\*.*its depths are "
                       r"\(3, 4, 6, 5\), as arch 'xtiny', this model's "
                       r"\(2, 2, 6, 2\)"):
        model.init_weights()


def test_partial_load_on_purpose_with_strict_false(tmp_path, caplog):
    path = _arch_checkpoint(tmp_path, 'xxtiny')
    source = torch.load(path, weights_only=True)['state_dict']
    model = GCViT('xtiny', init_cfg=dict(type='Pretrained',
                                         checkpoint=str(path), strict=False))
    from gcvit_mm.checkpoint import load_pretrained
    with caplog.at_level('WARNING'):
        load_pretrained(model, str(path), logging.getLogger('gcvit_test'),
                        strict=False)
    warnings = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING']
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "missing keys (left at their initial values): ['stages.0.blocks.2.")
    loaded = model.state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in source.items()
               if not k.startswith('norm'))
    model.init_weights()  # the same through init_cfg: no error
    with pytest.raises(CheckpointError, match="strict must be True or "
                       "False, got 'no'"):
        GCViT('xtiny', init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                     strict='no')).init_weights()


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
