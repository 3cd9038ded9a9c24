"""Side-by-side speed and memory benchmark: GC ViT-T against mmdet's Swin-T.

Rows: GC ViT-T with the paper's dense recipe (window 24), GC ViT-T with the
ImageNet windows (7, 7, 14, 7), and Swin-T exactly as mmdet's
``mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py`` builds it; then Mask R-CNN with
each backbone. Every number is measured in the same run; models take turns
inside each repeat (GC ViT, Swin, GC ViT, ...), so a load change on the
machine hits all of them alike, and the median of the repeats is reported.

Columns:
  * forward: backbone latency, batch 1, ``--shape``, eval, no_grad
    (on CUDA also under fp16 and bf16 autocast);
  * train step: forward + backward of a sum-of-squares loss on all outputs,
    batch ``--train-shape``;
  * peak memory: activation memory of one train step, without and with
    ``with_cp=True``: on CPU the rise of the peak RSS over the RSS after
    building the model, its gradients and the input, each config in a fresh
    process; on CUDA ``max_memory_allocated`` over the same baseline;
  * ONNX Runtime: GC ViT-T w24's backbone exported by
    ``gcvit_mm.deploy.export_onnx`` (dynamic shapes, border='pad'), run by
    ONNX Runtime on CPU with as many threads as torch, interleaved with the
    PyTorch backbone (eager, default path) at ``--shape``, batch 1; skipped
    with a note when the deploy extra is missing;
  * GFLOPs: mmengine's ``get_model_complexity_info`` at ``--shape`` (one
    FLOP = one multiply-add). mmengine does not count the fused
    ``scaled_dot_product_attention``, so GC ViT is counted with
    ``use_sdpa=False, border='pad'`` (plain matmuls, whole-map padding: the
    paper's count); the default path computes less than that (no work for
    padded tokens).

Usage::

    python tools/benchmark.py                      # CPU, ~10 min on 2 cores
    python tools/benchmark.py --device cuda        # + fp16 / bf16 autocast
    python tools/benchmark.py --skip-train --skip-memory --skip-flops \
        --skip-full-model                          # forward + ONNX Runtime only
"""
import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from typing import Callable, Dict, List, Sequence

warnings.filterwarnings('ignore')
import logging  # noqa: E402

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402

SWIN_T = dict(
    embed_dims=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24],
    window_size=7, mlp_ratio=4, qkv_bias=True, drop_path_rate=0.2,
    patch_norm=True, out_indices=(0, 1, 2, 3), convert_weights=True)
SWIN_CHANNELS = [96, 192, 384, 768]
GCVIT_T_CHANNELS = [64, 128, 256, 512]
BACKBONES = ('GC ViT-T w24', 'GC ViT-T w7', 'Swin-T')
PEER = 'Swin-T'
DETECTORS = {'Mask R-CNN GC ViT-T w24': 'GC ViT-T w24',
             'Mask R-CNN Swin-T': 'Swin-T'}


def build_backbone(name: str, **kwargs) -> nn.Module:
    """One of :data:`BACKBONES`; kwargs: with_cp, and for GC ViT only
    use_sdpa and border (dropped for Swin-T)."""
    if name == 'Swin-T':
        from mmdet.models.backbones import SwinTransformer
        kwargs.pop('use_sdpa', None)
        kwargs.pop('border', None)
        return SwinTransformer(**SWIN_T, **kwargs)
    from gcvit_mm import GCViT
    window = 24 if name == 'GC ViT-T w24' else (7, 7, 14, 7)
    return GCViT('tiny', window_size=window, **kwargs)


def build_detector(backbone: str) -> nn.Module:
    """mmdet's Mask R-CNN R50-FPN 1x with the backbone swapped, random
    weights (no RPN/RoI head changes, so both detectors share heads)."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    if backbone == 'Swin-T':
        cfg = dict(type='SwinTransformer', **SWIN_T)
        channels = SWIN_CHANNELS
    else:
        cfg = dict(type='GCViT', arch='tiny', window_size=24)
        channels = GCVIT_T_CHANNELS
    text = textwrap.dedent(f'''
        _base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'
        custom_imports = dict(imports=['gcvit_mm'], allow_failed_imports=False)
        model = dict(backbone=dict(_delete_=True, **{cfg!r}),
                     neck=dict(in_channels={channels!r}))
    ''')
    with tempfile.NamedTemporaryFile('w', suffix='.py') as f:
        f.write(text)
        f.flush()
        config = Config.fromfile(f.name)
    with DefaultScope.overwrite_default_scope('mmdet'):
        return MODELS.build(config.model)


def set_eval(model: nn.Module, train: bool = False) -> nn.Module:
    model.train(train)  # mmdet's SwinTransformer.train() returns None
    return model


# ---------------------------------------------------------------- timing
def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def interleaved_medians(fns: Dict[str, Callable[[], None]], warmup: int,
                        repeats: int, device: torch.device) -> Dict[str, float]:
    """Median seconds of each fn; fns take turns within every repeat."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            sync(device)
            start = time.perf_counter()
            fn()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def forward_fn(model: nn.Module, x: torch.Tensor,
               dtype: torch.dtype) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad(), torch.autocast(
                x.device.type, dtype=dtype, enabled=dtype != torch.float32):
            model(x)
    return run


def train_step_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        outs = model(x)
        sum(o.float().pow(2).mean() for o in outs).backward()
    return run


def detector_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    from mmdet.structures import DetDataSample
    H, W = x.shape[-2:]
    sample = DetDataSample(metainfo=dict(
        img_shape=(H, W), ori_shape=(H, W), pad_shape=(H, W),
        batch_input_shape=(H, W), scale_factor=(1., 1.)))

    def run() -> None:
        with torch.no_grad():
            model.predict(x, [sample], rescale=False)
    return run


# ---------------------------------------------------------------- memory
def train_memory_mib(name: str, with_cp: bool, train_shape: Sequence[int],
                     device: torch.device) -> float:
    """Activation memory (MiB) of one train step, see the module doc."""
    if device.type == 'cpu':  # RSS is a per-process high-water mark
        out = subprocess.run(
            [sys.executable, __file__, '--memory-probe', name,
             str(int(with_cp)), *map(str, train_shape)],
            capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])
    model, x = _train_setup(name, with_cp, train_shape, device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    train_step_fn(model, x)()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def _train_setup(name: str, with_cp: bool, train_shape: Sequence[int],
                 device: torch.device):
    torch.manual_seed(0)
    model = set_eval(build_backbone(name, with_cp=with_cp).to(device), True)
    for param in model.parameters():  # gradients are not activations
        param.grad = torch.zeros_like(param)
    x = torch.rand(*train_shape[:1], 3, *train_shape[1:], device=device)
    return model, x


def _status_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        line = next(line for line in f if line.startswith(field + ':'))
    return int(line.split()[1])


def _memory_probe(name: str, with_cp: bool, train_shape: Sequence[int]) -> None:
    model, x = _train_setup(name, with_cp, train_shape, torch.device('cpu'))
    try:  # reset the peak RSS, so building the model does not count
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        base, peak = _status_kib('VmRSS'), lambda: _status_kib('VmHWM')
    except OSError:  # no resettable peak: fall back to the lifetime peak
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak = lambda: resource.getrusage(  # noqa: E731
            resource.RUSAGE_SELF).ru_maxrss
    train_step_fn(model, x)()
    print((peak() - base) / 1024)  # KiB -> MiB


# ---------------------------------------------------------------- flops
def gflops(name: str, shape: Sequence[int]) -> float:
    from mmengine.analysis import get_model_complexity_info
    model = set_eval(build_backbone(name, use_sdpa=False, border='pad'))
    x = torch.rand(1, 3, *shape)
    with torch.no_grad():
        info = get_model_complexity_info(
            model, inputs=(x, ), show_table=False, show_arch=False)
    return info['flops'] / 1e9


# ---------------------------------------------------------------- onnx
ONNX_MODEL = 'GC ViT-T w24'


def onnx_runtime_latency(shape: Sequence[int], warmup: int, repeats: int
                         ) -> Dict[str, float]:
    """Median seconds of the PyTorch backbone and of its ONNX export under
    ONNX Runtime, interleaved, batch 1 at ``shape``; {} without the deploy
    extra or on a torch without the exporter (< 2.6)."""
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return {}
    from gcvit_mm.deploy import (export_onnx, exporter_unavailable,
                                 onnx_session, run_onnx)
    if exporter_unavailable():
        return {}
    torch.manual_seed(0)
    model = set_eval(build_backbone(ONNX_MODEL))
    twin = set_eval(build_backbone(ONNX_MODEL, border='pad'))
    twin.load_state_dict(model.state_dict())
    x = torch.rand(1, 3, *shape)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, 'backbone.onnx')
        # a small example: the file takes any size (dynamic shapes)
        export_onnx(twin, torch.rand(2, 3, 224, 320), path, dynamic=True)
        session = onnx_session(path, threads=torch.get_num_threads())
    fns = {'PyTorch': forward_fn(model, x, torch.float32),
           'ONNX Runtime': lambda: run_onnx(session, x)}
    return interleaved_medians(fns, warmup, repeats, torch.device('cpu'))


# ---------------------------------------------------------------- report
def machine(device: torch.device) -> str:
    if device.type == 'cuda':
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or platform.machine()
        try:
            with open('/proc/cpuinfo') as f:
                name = next(line.split(':', 1)[1].strip() for line in f
                            if line.startswith('model name'))
        except (OSError, StopIteration):
            pass
    return (f'{name}, torch {torch.__version__}, '
            f'{torch.get_num_threads()} threads, {os.cpu_count()} CPUs')


def ratio(value: float, peer: float) -> str:
    return f'{value / peer:.2f}x' if peer else '-'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='GC ViT-T vs Swin-T: latency, train step, memory, FLOPs')
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:i]')
    parser.add_argument('--shape', type=int, nargs=2, default=[800, 1216],
                        metavar=('H', 'W'), help='inference size')
    parser.add_argument(
        '--train-shape', type=int, nargs=3, default=[2, 384, 576],
        metavar=('B', 'H', 'W'),
        help='train step batch and size (default 2x384x576 on CPU, '
        '2x800x1216 on CUDA)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5,
                        help='repeats of the forward pass (median)')
    parser.add_argument('--train-repeats', type=int, default=3)
    parser.add_argument('--skip-train', action='store_true')
    parser.add_argument('--skip-memory', action='store_true')
    parser.add_argument('--skip-flops', action='store_true')
    parser.add_argument('--skip-full-model', action='store_true')
    parser.add_argument('--skip-onnx', action='store_true',
                        help='no ONNX Runtime row (CPU only)')
    parser.add_argument('--memory-probe', nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device.startswith('cuda') and '--train-shape' not in (
            argv or sys.argv):
        args.train_shape = [2, *args.shape]
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.memory_probe:
        name, cp, *shape = args.memory_probe
        _memory_probe(name, cp == '1', [int(s) for s in shape])
        return
    device = torch.device(args.device)
    dtypes = {'fp32': torch.float32}
    if device.type == 'cuda':
        dtypes.update(fp16=torch.float16, bf16=torch.bfloat16)
    torch.manual_seed(0)
    from mmengine.logging import MMLogger
    MMLogger.get_current_instance().setLevel(logging.ERROR)  # counter notes
    start = time.perf_counter()

    def log(msg: str) -> None:
        print(f'[{time.perf_counter() - start:5.0f} s] {msg}',
              file=sys.stderr, flush=True)

    rows: Dict[str, Dict[str, float]] = {name: {} for name in BACKBONES}
    models = {name: set_eval(build_backbone(name)).to(device)
              for name in BACKBONES}
    x = torch.rand(1, 3, *args.shape, device=device)
    for tag, dtype in dtypes.items():
        log(f'forward {tag} ...')
        fns = {n: forward_fn(m, x, dtype) for n, m in models.items()}
        for name, t in interleaved_medians(fns, args.warmup, args.repeats,
                                           device).items():
            rows[name][f'forward {tag}'] = t * 1e3
    if not args.skip_train:
        log('train step ...')
        xt = torch.rand(args.train_shape[0], 3, *args.train_shape[1:],
                        device=device)
        fns = {n: train_step_fn(set_eval(m, train=True), xt) for n, m in models.items()}
        for name, t in interleaved_medians(fns, args.warmup,
                                           args.train_repeats, device).items():
            rows[name]['train step'] = t
    del models
    if not args.skip_memory:
        for name in BACKBONES:
            log(f'memory {name} ...')
            for cp in (False, True):
                rows[name][f'mem cp={cp}'] = train_memory_mib(
                    name, cp, args.train_shape, device)
    if not args.skip_flops:
        log('flops ...')
        for name in BACKBONES:
            rows[name]['GFLOPs'] = gflops(name, args.shape)

    detectors = {}
    if not args.skip_full_model:
        log('full models ...')
        dets = {d: set_eval(build_detector(b).to(device))
                for d, b in DETECTORS.items()}
        fns = {n: detector_fn(m, x) for n, m in dets.items()}
        detectors = interleaved_medians(fns, args.warmup,
                                        max(args.repeats - 2, 1), device)
    onnx_times = {}
    if not args.skip_onnx and device.type == 'cpu':
        log('onnx runtime ...')
        onnx_times = onnx_runtime_latency(args.shape, args.warmup,
                                          args.repeats)
        if not onnx_times:
            from gcvit_mm.deploy import exporter_unavailable
            log(f'onnx runtime skipped: '
                f'{exporter_unavailable() or "no deploy extra"} '
                f'(bash tools/install.sh --deploy)')
    print_report(args, device, rows, detectors, onnx_times)


def print_report(args, device, rows, detectors, onnx_times=None) -> None:
    H, W = args.shape
    B, TH, TW = args.train_shape
    peer = rows[PEER]
    columns = [c for c in rows[PEER]]
    headers = {
        **{f'forward {t}': f'forward {t} (ms)' for t in ('fp32', 'fp16',
                                                          'bf16')},
        'train step': 'train step (s)',
        'mem cp=False': 'train mem (MiB)',
        'mem cp=True': 'train mem with_cp (MiB)',
        'GFLOPs': 'GFLOPs',
    }
    print(f'\n**Machine:** {machine(device)}  ')
    command = ' '.join(['python tools/benchmark.py', *sys.argv[1:]])
    print(f'**Command:** `{command}`  ')
    print(f'forward: batch 1, {H}x{W}; train step: batch {B}, {TH}x{TW}, '
          f'fp32; median of {args.repeats} (forward) / {args.train_repeats} '
          f'(train) interleaved repeats after {args.warmup} warm-up; '
          f'ratio = model / {PEER}.\n')
    head = ['backbone']
    for c in columns:
        head += [headers[c], 'ratio']
        if c == 'mem cp=True':
            head += ['with_cp / without']
    print('| ' + ' | '.join(head) + ' |')
    print('|' + '---|' * len(head))
    for name, row in rows.items():
        cells = [name]
        for c in columns:
            fmt = '{:.2f}' if c == 'train step' else '{:.0f}'
            if c == 'GFLOPs':
                fmt = '{:.1f}'
            cells += [fmt.format(row[c]), ratio(row[c], peer[c])]
            if c == 'mem cp=True':
                cells += [f'{row[c] / row["mem cp=False"]:.2f}']
        print('| ' + ' | '.join(cells) + ' |')
    if detectors:
        peer_det = detectors['Mask R-CNN Swin-T']
        print(f'\n| full model, inference per image {H}x{W} (ms) | time '
              f'| ratio |')
        print('|---|---|---|')
        for name, t in detectors.items():
            print(f'| {name} | {t * 1e3:.0f} | {ratio(t, peer_det)} |')
        print('\nMask R-CNN: mmdet\'s R50-FPN 1x config with the backbone '
              'swapped, random weights, eval, no_grad; RPN keeps 1000 '
              'proposals for both, the RoI head runs on all of them (with '
              'random weights no box passes the score threshold, so the '
              'mask head runs on none for either).')
    if onnx_times:
        import onnxruntime
        base = onnx_times['PyTorch']
        print(f'\n| {ONNX_MODEL} backbone, batch 1, {H}x{W}, fp32 (ms) '
              f'| time | ratio |')
        print('|---|---|---|')
        print(f'| PyTorch {torch.__version__} (eager) | {base * 1e3:.0f} '
              f'| 1.00x |')
        t = onnx_times['ONNX Runtime']
        print(f'| ONNX Runtime {onnxruntime.__version__} (CPU, exported '
              f'with dynamic shapes) | {t * 1e3:.0f} | {ratio(t, base)} |')


if __name__ == '__main__':
    main()
