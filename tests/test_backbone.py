"""GCViT backbone: shapes, batching, freezing, checkpointing, bad input."""
import pytest
import torch

from gcvit_mm import GCViT
from gcvit_mm.models.layers import token_generator_layout
from conftest import SMALL_ARCH, randomize_

# Also run on the older stacks by CI's compatibility run (pytest -m compat).
pytestmark = pytest.mark.compat


def expected_size(size: int, stage: int) -> int:
    """Output size of (stage + 2) stride-2, padding-1, 3x3 convs."""
    for _ in range(stage + 2):
        size = (size - 1) // 2 + 1
    return size


@pytest.mark.parametrize('arch', sorted(GCViT.arch_zoo))
def test_every_arch_builds_with_its_channels(arch):
    model = GCViT(arch, window_size=7).eval()
    dim = GCViT.arch_zoo[arch]['dim']
    assert model.num_features == [dim, 2 * dim, 4 * dim, 8 * dim]
    assert model.out_channels == model.num_features
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == model.num_features
    assert [o.shape[-1] for o in outs] == [16, 8, 4, 2]


def test_tiny_parameter_count_matches_the_paper():
    model = GCViT('tiny')
    params = sum(p.numel() for p in model.parameters()) / 1e6
    assert 27.5 < params < 28.5, params  # paper: 28M


@pytest.mark.parametrize('hw', [(511, 383), (32, 32), (224, 512), (97, 45)])
@pytest.mark.parametrize('window', [7, 24])
def test_any_input_size_gives_strided_conv_sizes(hw, window):
    model = GCViT(SMALL_ARCH, window_size=window).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, *hw))
    for i, out in enumerate(outs):
        assert out.shape == (1, 32 * 2**i, expected_size(hw[0], i),
                             expected_size(hw[1], i))
        assert torch.isfinite(out).all()
        # Stages pass channels-last maps along; outputs are plain NCHW.
        assert out.is_contiguous()


def test_tiny_at_a_detection_size():
    model = GCViT('tiny', window_size=24, out_indices=(1, 3)).eval()
    with torch.no_grad():
        outs = model(torch.rand(1, 3, 800, 1216))
    assert [tuple(o.shape) for o in outs] == [(1, 128, 100, 152),
                                             (1, 512, 25, 38)]
    assert model.out_channels == [128, 512]


def test_batch_images_do_not_mix():
    """Window k of image b must use image b's global tokens: changing image 1
    leaves image 0's outputs as they were, and a batch of 2 gives what two
    batches of 1 give."""
    model = randomize_(GCViT(SMALL_ARCH, window_size=3)).eval()
    x = torch.rand(2, 3, 96, 128)  # several windows per image in each stage
    with torch.no_grad():
        outs = model(x)
        x_changed = x.clone()
        x_changed[1] = torch.rand(3, 96, 128)
        outs_changed = model(x_changed)
        single = [model(x[i:i + 1]) for i in range(2)]
    for i, (a, b) in enumerate(zip(outs, outs_changed)):
        assert torch.equal(a[0], b[0]), f'stage {i}: image 0 changed'
        assert not torch.allclose(a[1], b[1])
        for img in range(2):
            torch.testing.assert_close(a[img], single[img][i][0],
                                       rtol=1e-5, atol=1e-5)


def test_token_generator_follows_the_pretraining_geometry():
    # ImageNet windows at 224: 56 -> 7 (3 pools), 28 -> 7 (2), 14, 7.
    assert [token_generator_layout(i, 224, w)
            for i, w in enumerate((7, 7, 14, 7))] == [(3, 3), (2, 2), (1, 0),
                                                     (1, 0)]
    # Dense recipe (window 24): same stack, but stride 16 pools once.
    assert [token_generator_layout(i, 224, 24)
            for i in range(4)] == [(3, 3), (2, 2), (1, 1), (1, 0)]
    # ImageNet-21K large at 384 with windows (12, 12, 24, 12).
    assert [token_generator_layout(i, 384, w)
            for i, w in enumerate((12, 12, 24, 12))] == [(3, 3), (2, 2),
                                                        (1, 0), (1, 0)]


def test_global_tokens_are_resized_to_one_window():
    model = GCViT(SMALL_ARCH, window_size=24).eval()
    seen = []
    hook = model.stages[0].token_generator.register_forward_hook(
        lambda m, i, o: seen.append(o.shape))
    with torch.no_grad():
        model(torch.rand(2, 3, 800, 608))  # stride 4: 200x152 -> 25x19
    hook.remove()
    assert seen == [(2, 24 * 24, 32)]


def test_imagenet_geometry_needs_no_resize_or_padding(monkeypatch):
    """At 224 with windows (7, 7, 14, 7) every map is a whole number of
    windows and every generator lands exactly on one window, so the model
    computes what the pretrained classifier computes."""
    model = GCViT('tiny').eval()
    resized = []
    monkeypatch.setattr(torch.nn.functional, 'interpolate',
                        lambda *a, **k: resized.append(a[0].shape))
    padded = []
    monkeypatch.setattr(torch.nn.functional, 'pad',
                        lambda *a, **k: padded.append(a[0].shape))
    maps = []
    for stage in model.stages:
        stage.blocks[0].register_forward_pre_hook(
            lambda m, args: maps.append(tuple(args[0].shape[1:3])))
    with torch.no_grad():
        model(torch.rand(1, 3, 224, 224))
    assert resized == [] and padded == []
    assert maps == [(56, 56), (28, 28), (14, 14), (7, 7)]


def test_from_scratch_geometry_pools_to_one_window(monkeypatch):
    """Training from scratch at 128 px with windows (8, 8, 8, 4), the
    training geometry as the "pretraining" one: every generator pools its
    map to exactly one window (32->8, 16->8, 8, 4) and nothing is resized.
    With the ImageNet default the stride-4 to stride-16 generators pool to
    4x4 and upsample it to 8x8."""
    windows = (8, 8, 8, 4)
    assert [token_generator_layout(i, 128, w, w)
            for i, w in enumerate(windows)] == [(2, 2), (1, 1), (1, 0),
                                                (1, 0)]
    scratch = GCViT('xxtiny', window_size=windows, pretrain_img_size=128,
                    pretrain_window_size=windows).eval()
    imagenet = GCViT('xxtiny', window_size=windows).eval()
    assert [s.token_generator.num_pools for s in imagenet.stages] == [
        3, 2, 1, 0]
    real_interpolate = torch.nn.functional.interpolate
    resized = []

    def interpolate(x, *args, **kwargs):
        resized.append(tuple(x.shape[-2:]))
        return real_interpolate(x, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, 'interpolate', interpolate)
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        scratch(x)
        assert resized == []
        imagenet(x)
    assert resized == [(4, 4)] * 3


def test_pretrain_window_size_is_checked_per_stage():
    with pytest.raises(ValueError, match='pretrain_window_size must be'):
        GCViT(SMALL_ARCH, pretrain_window_size=(8, 8, 8))


def test_a_one_block_stage_has_no_unused_parameters():
    """Global blocks are the odd ones: a stage of depth 1 needs no token
    generator, whose unused parameters would make DDP fail."""
    model = GCViT(dict(SMALL_ARCH, depths=(1, 2, 1, 2))).train()
    assert model.stages[0].token_generator is None
    assert model.stages[1].token_generator is not None
    outs = model(torch.rand(1, 3, 64, 64))
    sum(o.sum() for o in outs).backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []


def test_frozen_stages_stay_frozen_and_in_eval_mode():
    model = GCViT(SMALL_ARCH, frozen_stages=2)
    assert model.train() is model
    frozen = [model.stem, model.stages[0], model.stages[1], model.norm0,
              model.norm1]
    for module in frozen:
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())
    for module in (model.stages[2], model.stages[3], model.norm2):
        assert module.training
        assert all(p.requires_grad for p in module.parameters())
    outs = model(torch.rand(1, 3, 64, 64))
    sum(o.sum() for o in outs).backward()  # the paper's code crashed here
    assert model.stages[0].blocks[0].attn.proj.weight.grad is None
    assert model.stages[2].blocks[0].attn.proj.weight.grad is not None
    assert model.eval() is model and not model.stages[2].training


@pytest.mark.parametrize('frozen_stages', [-1, 0, 4])
def test_frozen_stages_bounds(frozen_stages):
    model = GCViT(SMALL_ARCH, frozen_stages=frozen_stages).train()
    trainable = sum(p.requires_grad for p in model.parameters())
    norms = sum(p.requires_grad for n, p in model.named_parameters()
                if n.startswith('norm'))
    if frozen_stages == -1:
        assert trainable == len(list(model.parameters()))
    elif frozen_stages == 4:
        assert trainable == norms == 0
    else:
        assert not any(p.requires_grad for p in model.stem.parameters())


def test_with_cp_gives_the_same_outputs_and_gradients():
    x = torch.rand(2, 3, 80, 72)
    results = []
    for with_cp in (False, True):
        model = randomize_(
            GCViT(SMALL_ARCH, window_size=5, drop_path_rate=0.2,
                  with_cp=with_cp)).train()
        torch.manual_seed(1)  # same drop-path draws in both runs
        outs = model(x)
        loss = sum((o * torch.linspace(0, 1, o.shape[1])[:, None, None]).sum()
                   for o in outs)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()
                 if p.grad is not None}
        results.append((outs, grads))
    (outs_a, grads_a), (outs_b, grads_b) = results
    for a, b in zip(outs_a, outs_b):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 100
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-5,
                                   atol=1e-6, msg=name)


def test_sdpa_path_matches_the_plain_reference_path():
    x = torch.rand(2, 3, 100, 76)
    outs = []
    for use_sdpa in (True, False):
        model = randomize_(GCViT(SMALL_ARCH, window_size=6,
                                 use_sdpa=use_sdpa)).eval()
        with torch.no_grad():
            outs.append(model(x))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch='huge'), r"Unknown GCViT arch 'huge'; choose one of"),
    (dict(arch=dict(dim=32, depths=(2, 2, 2, 2))), r'missing \[.*mlp_ratio'),
    (dict(arch=dict(SMALL_ARCH, depths=(2, 2, 2))), r'one per stage'),
    (dict(out_indices=(0, 4)), r'out_indices must be distinct stage indices'),
    (dict(out_indices=(1, 1)), r'out_indices must be distinct'),
    (dict(window_size=(7, 7, 7)), r'window_size must be'),
    (dict(frozen_stages=5), r'frozen_stages must be in \[-1, 4\]'),
])
def test_bad_arguments_raise_clear_errors(kwargs, match):
    kwargs.setdefault('arch', SMALL_ARCH)
    with pytest.raises(ValueError, match=match):
        GCViT(**kwargs)


def test_wrong_input_channels_raise_a_clear_error():
    model = GCViT(SMALL_ARCH, in_channels=3)
    with pytest.raises(ValueError, match=r'in_channels=3.*got \(1, 4, 32, 32\)'):
        model(torch.rand(1, 4, 32, 32))
    assert GCViT(SMALL_ARCH, in_channels=4)(torch.rand(1, 4, 32, 32))
