"""Shared helpers for the gcvit_mm test suite (CPU, small models)."""
import pytest
import torch

# A 4-stage GC ViT small enough for fast CPU tests; layer scale on, so the
# gamma parameters are exercised too.
SMALL_ARCH = dict(dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
                  mlp_ratio=2., layer_scale=0.5)


def randomize_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter non-trivial values (LayerNorm weights near 1), so
    that a wrong key mapping or a skipped path shows in the outputs."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=gen)
            if name.endswith('gamma1') or name.endswith('gamma2') or (
                    param.dim() == 1 and 'norm' in name
                    and name.endswith('weight')):
                param.copy_(1 + 0.2 * noise)
            else:
                param.copy_(0.1 * noise)
    return model


def stage_outputs(model: torch.nn.Module, x: torch.Tensor) -> list:
    """Raw outputs of ``model.stages`` (before the new output norms)."""
    outs = []
    hooks = [s.register_forward_hook(lambda m, i, o: outs.append(o))
             for s in model.stages]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return outs


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


def pytest_terminal_summary(terminalreporter):
    """Show the measured timm parity, so every run reports it."""
    try:
        from test_timm_parity import MEASURED, TOLERANCE
    except ImportError:
        return
    if MEASURED:
        terminalreporter.write_line(
            f'timm parity (fp32, batch 2), max |ours - timm| per output, '
            f'tolerance {TOLERANCE:g}:')
        for name, (diff, scale) in MEASURED.items():
            terminalreporter.write_line(
                f'  {name:7s} {diff:.2e}  (max |timm| {scale:.2f})')


@pytest.fixture(scope='session')
def tiny_toy_data(tmp_path_factory):
    """Root of the tiny toy COCO set (detection_utils.TINY_DATA), generated
    once per test session: point $GCVIT_MM_DATA at it."""
    from detection_utils import make_tiny_toy_data
    root = str(tmp_path_factory.mktemp('tiny_toy_data'))
    make_tiny_toy_data(root)
    return root


@pytest.fixture
def toy_env(tiny_toy_data, monkeypatch):
    """The tiny toy set for configs run in this process."""
    # configs read $GCVIT_MM_DATA when they are loaded
    monkeypatch.setenv('GCVIT_MM_DATA', tiny_toy_data)
    # torch >= 2.6 loads with weights_only=True unless this is set
    monkeypatch.delenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', raising=False)
    return tiny_toy_data
