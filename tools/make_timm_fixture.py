#!/usr/bin/env python
"""Build the numerical reference fixture ``tests/data/timm_gcvit_fixture.npz``.

The fixture is produced with timm's ``GlobalContextVit`` (timm 1.0.31,
Apache-2.0) and is used to test our independent GC ViT implementation.  This
script does NOT import ``gcvit_mm``; it only needs timm, torch and numpy.

Recreate the (separate, throw-away) environment -- do not use the system python,
timm pulls torchvision which pulls a large CUDA build of torch::

    python3.11 -m venv /tmp/timm-env
    /tmp/timm-env/bin/pip install torch==2.14.1 torchvision==0.29.1 timm==1.0.31 numpy

Then, from the repository root::

    /tmp/timm-env/bin/python tools/make_timm_fixture.py [--out tests/data/timm_gcvit_fixture.npz]

The run is deterministic (fixed seeds, float32, CPU, one thread, deterministic
algorithms); running it twice gives a bit-identical set of arrays.

Model (reduced GC ViT)::

    GlobalContextVit(img_size=96, embed_dim=32, depths=(2, 2, 2, 2),
                     num_heads=(1, 2, 4, 8), mlp_ratio=1, layer_scale=1.0,
                     num_classes=0)

At img_size 96 timm derives window sizes (3, 3, 6, 3) from window_ratio
(32, 32, 16, 32); stage feature maps are 24, 12, 6, 3; global-token pooling
levels are 3, 2, 0, 0 (level 0 = one MbConv block, no pooling).  embed_dim=32 is
the smallest width where timm's SE reduction ``make_divisible(C * 0.25, 8)``
equals the plain ``int(C * 0.25)``.

Contents of the npz (see tests/data/README.md for the full key/shape listing):

* ``w/<state_dict key>`` int8 and ``s/<state_dict key>`` float32 scalar for every
  tensor of timm's state_dict (no ``head.*`` keys exist with num_classes=0).
  The float32 weight is exactly ``w.astype(np.float32) * s`` (scales carry at
  most 8 significant bits, so the product is exact in float32).  Large tensors
  (numel >= 4096) use only q in [-2, 2] to keep the file small, see COARSE_QMAX.
* ``x``: input, (2, 3, 96, 96) float16; values are multiples of 1/16 in
  [-4, 4], so ``x.astype(np.float32)`` is exact.
* ``per_image/stage{i}`` (i = 0..3): NCHW float32 output of the last block of
  ``stages[i]`` (i.e. BEFORE the stage-3 LayerNorm ``stages.3.norm``), timm run
  on each image separately (batch 1) and concatenated along the batch.
* ``per_image/final``: output of ``stages[3]`` including ``stages.3.norm``.
* ``batched/stage{i}``, ``batched/final``: the same, timm run on the batch of 2.
* ``debug/stem_image0``: (1, 32, 24, 24) NCHW output of ``model.stem`` for image 0.
* ``debug/per_image/global_query{i}``: NCHW output of ``stages[i].global_block``
  (the global query tokens, ``global_norm`` is Identity in timm).
* ``meta``: JSON string (0-d unicode array) with versions, model kwargs, derived
  sizes, seeds, the timm q_global broadcasting line and a description.

About the q_global broadcast: older timm releases broadcast the global query to
the windows with ``q_global.repeat(B // q_global.shape[0], 1, 1, 1)``, which tiles
images (image 0, image 1, image 0, ...) although ``window_partition`` produces
image-major windows.  The script prints the line found in the installed timm and
records both the batched and per-image outputs so a test can tell the two apart.
"""
import argparse
import inspect
import json
import os
import sys

import numpy as np
import torch

import timm
from timm.models.gcvit import GlobalContextVit, WindowAttentionGlobal

SEED = 20240601
MODEL_KWARGS = dict(
    img_size=96,
    embed_dim=32,
    depths=(2, 2, 2, 2),
    num_heads=(1, 2, 4, 8),
    mlp_ratio=1,
    layer_scale=1.0,
    num_classes=0,
)
EXPECTED_WINDOWS = (3, 3, 6, 3)
EXPECTED_FEAT = (24, 12, 6, 3)
EXPECTED_LEVELS = (3, 2, 0, 0)
# Large weight tensors (numel >= COARSE_NUMEL: linear/conv weights of width >= 64)
# use a coarse random grid q in [-COARSE_QMAX, COARSE_QMAX] (rounded trunc-normal,
# scale = std) so that the compressed fixture stays around 1 MB (random full-range
# int8 does not compress); the grid resolution is irrelevant for an equivalence test.
# All other tensors (norms, biases, gammas, rel-pos tables, small convs) use the
# full int8 range [-127, 127].
COARSE_NUMEL = 4096
X_GRID = 16  # input values are multiples of 1/X_GRID in [-4, 4] (exact in float16)
COARSE_QMAX = 2


def _round_scale(s):
    """Round a positive scale to 8 significant bits so that q * s (|q| <= 127) is exact."""
    m, e = np.frexp(np.float64(s))
    m = np.round(m * 256.0) / 256.0
    return np.float32(np.ldexp(m, e))


def _quantise(vals, qmax):
    """vals (float64) -> (q int8, scale float32) with q * scale ~= vals, max |q| == qmax-ish."""
    amax = float(np.max(np.abs(vals)))
    scale = _round_scale(amax / qmax)
    q = np.clip(np.round(vals / np.float64(scale)), -127, 127).astype(np.int8)
    return q, scale


def _trunc_normal(rng, shape, std, a=2.0):
    v = rng.standard_normal(size=shape)
    bad = np.abs(v) > a
    while bad.any():
        v[bad] = rng.standard_normal(size=int(bad.sum()))
        bad = np.abs(v) > a
    return v * std


def make_weights(model, rng):
    """Random, exactly representable int8 * scale weights for every state_dict tensor."""
    sd = model.state_dict()
    modules = dict(model.named_modules())
    out = {}
    for name, t in sd.items():
        assert t.dtype == torch.float32, name
        mod_name, pname = name.rsplit('.', 1)
        mod = modules[mod_name]
        shape = tuple(t.shape)
        numel = int(np.prod(shape))
        qmax = COARSE_QMAX if numel >= COARSE_NUMEL else 127
        if isinstance(mod, torch.nn.LayerNorm):  # includes timm LayerNorm2d
            if pname == 'weight':
                vals = 1.0 + rng.uniform(-0.2, 0.2, size=shape)
            else:
                vals = rng.normal(0.0, 0.1, size=shape)
            qmax = 127
        elif pname == 'gamma':  # ls1.gamma / ls2.gamma
            vals = rng.uniform(0.3, 1.5, size=shape)
            qmax = 127
        elif pname == 'relative_position_bias_table':
            vals = rng.normal(0.0, 0.5, size=shape)
            qmax = 127
        elif isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
            if pname == 'weight':
                fan_in = numel // shape[0]
                if mod_name.endswith('se.fc2'):
                    gain = 2.0  # make the SE gate actually vary around 0.5
                elif mod_name.endswith('qkv'):
                    gain = 1.2  # attention logits O(1): softmax neither flat nor one-hot
                else:
                    gain = 1.0
                vals = _trunc_normal(rng, shape, gain / np.sqrt(fan_in))
            else:
                vals = rng.normal(0.0, 0.05, size=shape)
                qmax = 127
        else:
            raise RuntimeError(f'unhandled state_dict entry {name} ({type(mod).__name__})')
        q, scale = _quantise(vals, qmax)
        out[name] = (q, scale)
    return out


def weights_to_state_dict(qs):
    return {k: torch.from_numpy(q.astype(np.float32) * s) for k, (q, s) in qs.items()}


def build_model():
    torch.manual_seed(SEED)
    model = GlobalContextVit(**MODEL_KWARGS)
    model.eval()
    return model


def check_structure(model):
    feats, wins, levels = [], [], []
    for st in model.stages:
        feats.append(st.feat_size[0])
        wins.append(st.blocks[0].window_size[0])
        levels.append(sum(1 for n in st.global_block.blocks._modules if n.startswith('pool')))
    print('stage feat sizes  :', feats)
    print('window sizes      :', wins)
    print('global pool levels:', levels)
    se = model.stem.down.conv_block.se
    print('SE reduced chans (stem, C=32):', se.fc1.out_channels)
    assert tuple(feats) == EXPECTED_FEAT, feats
    assert tuple(wins) == EXPECTED_WINDOWS, wins
    assert tuple(levels) == EXPECTED_LEVELS, levels
    for st in model.stages:
        for m in st.modules():
            if hasattr(m, 'fc1') and hasattr(m, 'gate'):
                assert m.fc1.out_channels == int(m.fc1.in_channels * 0.25)
    return feats, wins, levels


def find_qglobal_line():
    src = inspect.getsource(WindowAttentionGlobal.forward)
    lines = [ln.strip() for ln in src.splitlines() if 'q_global.repeat' in ln]
    return lines


@torch.no_grad()
def run_capture(model, x):
    """Run forward_features; return dict of NCHW float32 numpy arrays."""
    cap = {}
    hooks = []
    for i, st in enumerate(model.stages):
        hooks.append(st.blocks[-1].register_forward_hook(
            lambda m, a, o, i=i: cap.__setitem__(f'stage{i}', o.permute(0, 3, 1, 2).contiguous().clone())))
        hooks.append(st.global_block.register_forward_hook(
            lambda m, a, o, i=i: cap.__setitem__(f'global_query{i}', o.contiguous().clone())))
    hooks.append(model.stages[3].register_forward_hook(
        lambda m, a, o: cap.__setitem__('final', o.contiguous().clone())))
    hooks.append(model.stem.register_forward_hook(
        lambda m, a, o: cap.__setitem__('stem', o.contiguous().clone())))
    try:
        model.forward_features(x)
    finally:
        for h in hooks:
            h.remove()
    return {k: v.numpy().astype(np.float32) for k, v in cap.items()}


@torch.no_grad()
def branch_diagnostics(model, x):
    """rms of residual stream vs. attention / MLP branches per block (checks no path dominates)."""
    rows = []
    for si, st in enumerate(model.stages):
        for bi, blk in enumerate(st.blocks):
            rec = {}
            hs = [
                blk.register_forward_pre_hook(lambda m, a, rec=rec: rec.__setitem__('in', a[0].clone())),
                blk.ls1.register_forward_hook(lambda m, a, o, rec=rec: rec.__setitem__('attn', o.clone())),
                blk.ls2.register_forward_hook(lambda m, a, o, rec=rec: rec.__setitem__('mlp', o.clone())),
            ]
            rows.append((si, bi, blk.attn.use_global, rec, hs))
    model.forward_features(x)
    print('block    global  rms(in)  rms(attn)  rms(mlp)')
    for si, bi, g, rec, hs in rows:
        for h in hs:
            h.remove()
        r = lambda t: float(t.pow(2).mean().sqrt())
        print(f'  s{si}.b{bi}  {str(g):6s}  {r(rec["in"]):7.3f}  {r(rec["attn"]):9.3f}  {r(rec["mlp"]):8.3f}')


def main():
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=os.path.join(repo_root, 'tests', 'data', 'timm_gcvit_fixture.npz'))
    ap.add_argument('--print-model', action='store_true')
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    print('timm', timm.__version__, 'torch', torch.__version__, 'numpy', np.__version__)

    model = build_model()
    if args.print_model:
        print(model)
    feats, wins, levels = check_structure(model)

    qg_lines = find_qglobal_line()
    print('q_global broadcast in installed timm:', qg_lines)

    rng = np.random.default_rng(SEED)
    qs = make_weights(model, rng)
    assert not any(k.startswith('head.') for k in qs)
    model.load_state_dict(weights_to_state_dict(qs), strict=True)

    x = np.clip(np.round(rng.standard_normal(size=(2, 3, 96, 96)) * X_GRID), -4 * X_GRID, 4 * X_GRID) / X_GRID
    x16 = x.astype(np.float16)
    assert np.array_equal(x16.astype(np.float64), x)
    xt = torch.from_numpy(x16.astype(np.float32))

    branch_diagnostics(model, xt)

    batched = run_capture(model, xt)
    singles = [run_capture(model, xt[i:i + 1]) for i in range(xt.shape[0])]
    per_image = {k: np.concatenate([s[k] for s in singles], axis=0) for k in singles[0]}

    names = [f'stage{i}' for i in range(4)] + ['final']
    print('output shapes / rms / max|batched - per_image|:')
    diffs = {}
    for k in names + ['stem'] + [f'global_query{i}' for i in range(4)]:
        d = float(np.max(np.abs(batched[k] - per_image[k])))
        diffs[k] = d
        print(f'  {k:14s} {str(per_image[k].shape):18s} rms={float(np.sqrt(np.mean(per_image[k] ** 2))):.4f}'
              f'  maxdiff={d:.3e}')

    meta = dict(
        description=(
            'Reference outputs of timm GlobalContextVit (reduced config) with random int8*scale weights. '
            'stage{i} = NCHW output of stages[i].blocks[-1] (before stages.3.norm); final = stages[3] output '
            'incl. stages.3.norm. per_image/* = timm run per image (batch 1) and concatenated; batched/* = timm '
            'run on the batch of 2. Weight = w/<key>.astype(float32) * s/<key>.'),
        timm_version=timm.__version__,
        torch_version=torch.__version__,
        numpy_version=np.__version__,
        model_kwargs={k: (list(v) if isinstance(v, tuple) else v) for k, v in MODEL_KWARGS.items()},
        derived=dict(window_sizes=wins, feat_sizes=feats, global_pool_levels=levels,
                     stage_dims=[st.dim for st in model.stages], norm_eps=1e-5,
                     use_global_per_block='odd block index (1) uses the global query, block 0 is local'),
        seed=SEED,
        input=dict(shape=list(x16.shape), dtype=f'float16 (exact), values k/{X_GRID} in [-4, 4]'),
        q_global_broadcast_line=qg_lines,
        max_abs_diff_batched_vs_per_image=diffs,
        coarse_grid=dict(numel_threshold=COARSE_NUMEL, qmax=COARSE_QMAX),
    )

    arrays = {}
    for k, (q, s) in qs.items():
        arrays[f'w/{k}'] = q
        arrays[f's/{k}'] = np.array(s, dtype=np.float32)
    arrays['x'] = x16
    for k in names:
        arrays[f'per_image/{k}'] = per_image[k]
        arrays[f'batched/{k}'] = batched[k]
    arrays['debug/stem_image0'] = per_image['stem'][:1]
    for i in range(4):
        arrays[f'debug/per_image/global_query{i}'] = per_image[f'global_query{i}']
    arrays['meta'] = np.array(json.dumps(meta, indent=1, sort_keys=True))

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f'wrote {args.out}: {os.path.getsize(args.out)} bytes, {len(arrays)} arrays')

    # Self-check: reload, rebuild a fresh model from the stored ints and re-run.
    with np.load(args.out) as f:
        sd = {k[2:]: torch.from_numpy(f[k].astype(np.float32) * f['s/' + k[2:]]) for k in f.files if k.startswith('w/')}
        model2 = build_model()
        model2.load_state_dict(sd, strict=True)
        out2 = run_capture(model2, torch.from_numpy(f['x'].astype(np.float32)[:1]))
        assert np.array_equal(out2['final'], f['per_image/final'][:1]), 'reload mismatch'
        assert f['w/stem.conv1.weight'].dtype == np.int8 and f['s/stem.conv1.weight'].dtype == np.float32
    print('self-check OK')
    return 0


if __name__ == '__main__':
    sys.exit(main())
