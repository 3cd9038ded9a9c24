# Export a config's model to ONNX and check the file with ONNX Runtime.
#
#   python tools/deploy/export_onnx.py CONFIG [CHECKPOINT] --out model.onnx \
#       --shape H W [--dynamic]
#
# What is exported: a detection config's backbone + neck (outputs feat0,
# feat1, ...: the neck's feature maps), a segmentation config's whole
# segmentor in its tensor mode (output logits: (B, classes, H/4, W/4) for
# UperNet). The input `images` is (B, 3, H, W) after the config's data
# preprocessor (normalised; see the mean/std line printed). --dynamic makes
# batch, height and width dynamic.
#
# GC ViT is exported with border='pad' (its size-agnostic border windows)
# and adaptive pools as size-agnostic averaging matrices; the PyTorch side
# of the check is the config's model as it is, with the same weights.
#
# The check: ONNX Runtime (CPU) against PyTorch on inputs of shapes not used
# at export (other batch sizes; sizes that are neither multiples of 32 nor
# give maps that are multiples of the windows), max |difference| printed;
# exit 1 with one line when it exceeds --tolerance (1e-4). Without --dynamic
# the file only takes the export shape, so the check uses that shape with a
# new input. Without CHECKPOINT the weights are random (enough to check the
# export; deploy with a trained checkpoint).
#
# Needs the deploy extra: bash tools/install.sh --deploy
import argparse
import copy
import logging
import os.path as osp
import time
import warnings

warnings.filterwarnings('ignore')
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from gcvit_mm.engine.checks import (check_backbones,  # noqa: E402
                                    check_checkpoint_file)
from gcvit_mm.utils import (UserError, fail, load_config,  # noqa: E402
                            report_user_errors, scope_of)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Export a detection config (backbone + neck) or a '
        'segmentation config (segmentor logits) to ONNX, checked against '
        'PyTorch with ONNX Runtime')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', nargs='?',
                        help='checkpoint (default: random weights)')
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument(
        '--shape', type=int, nargs=2, required=True, metavar=('H', 'W'),
        help='input size at export (with --dynamic: the tracing example, '
        'raised to two windows per stage when smaller)')
    parser.add_argument('--dynamic', action='store_true',
                        help='dynamic batch, height and width')
    parser.add_argument(
        '--batch', type=int,
        help='batch at export (default 1; 2 with --dynamic: a size-1 '
        'dimension would be exported as a constant)')
    parser.add_argument(
        '--check-shape', type=int, nargs=3, action='append',
        metavar=('B', 'H', 'W'),
        help='input shape of the ONNX Runtime check (repeatable; default: '
        'two shapes that the export did not use)')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest max |ONNX Runtime - PyTorch| accepted')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # The torch and the dependencies first: without them nothing else matters.
    from gcvit_mm.deploy import exporter_unavailable
    if exporter_unavailable():
        fail(exporter_unavailable())
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        fail(f'ONNX export needs the deploy extra ({e.name} is not installed): '
             f'bash tools/install.sh --deploy')
    from gcvit_mm.deploy import (check_with_onnxruntime, export_onnx,
                                 onnx_session, tensor_forward, trace_size,
                                 unaligned_size, use_export_border,
                                 use_exportable_pools)

    # The exporter warns about every torchvision op it cannot register.
    logging.getLogger('torch.onnx').setLevel(logging.ERROR)
    MMLogger.get_current_instance().setLevel(logging.ERROR)  # init_weights notes

    H, W = args.shape
    dynamic = args.dynamic
    batch = args.batch or (2 if dynamic else 1)
    with report_user_errors():
        if min(H, W) < 32 or batch < 1:
            raise UserError(f'--shape {H} {W} --batch {batch}: GC ViT needs '
                            f'images of 32 px and more, and a batch of 1 or more')
        if osp.isdir(args.out) or not osp.isdir(osp.dirname(osp.abspath(
                args.out))):
            raise UserError(f'--out {args.out!r} must be a file in an existing '
                            f'folder')
        cfg = load_config(args.config, args.cfg_options)
        init_default_scope(scope_of(cfg))
        check_backbones(cfg)
        check_checkpoint_file(args.checkpoint, 'checkpoint')

    from mmengine.registry import MODELS
    from mmengine.runner import load_checkpoint

    # Weights come from CHECKPOINT or are random: no pretrained download.
    backbone_cfg = cfg.model.get('backbone', {})
    backbone_cfg.pop('init_cfg', None)
    with report_user_errors(f'cannot build the model of {args.config}',
                            exc_types=(Exception, )):
        model = MODELS.build(cfg.model)
        model.init_weights()
    if args.checkpoint:
        with report_user_errors(f'cannot load checkpoint {args.checkpoint!r}',
                                exc_types=(Exception, )):
            load_checkpoint(model, args.checkpoint, map_location='cpu',
                            strict=True, logger='silent')
    reference = tensor_forward(model).eval()

    # The export twin: same weights, size-agnostic border windows and pools.
    export_cfg = copy.deepcopy(cfg.model)
    use_export_border(export_cfg)
    export_model = MODELS.build(export_cfg)
    export_model.load_state_dict(model.state_dict())
    pools = use_exportable_pools(export_model)
    module = tensor_forward(export_model).eval()

    pre = cfg.model.get('data_preprocessor') or {}
    print(f'model: {args.config} -> {module.kind} '
          f'({"weights " + args.checkpoint if args.checkpoint else "random weights"}'
          f'); input: images after mean={pre.get("mean")} std={pre.get("std")} '
          f'bgr_to_rgb={pre.get("bgr_to_rgb", False)}')
    if pools:
        print(f'  {pools} adaptive average pools exported as averaging matrices')

    # With --dynamic, trace where every stage spans two windows or more: a
    # window count of 1 in the example would be exported as a constant.
    windows = getattr(getattr(model, 'backbone', None), 'window_size', ()) or ()
    th, tw = H, W
    if dynamic:
        th, tw = trace_size(H, windows), trace_size(W, windows)
        if (th, tw) != (H, W):
            print(f'  traced at {th}x{tw} instead of {H}x{W}: two windows '
                  f'per stage at least (windows {tuple(windows)})')
    t0 = time.perf_counter()
    example = torch.randn(batch, 3, th, tw)
    with report_user_errors('ONNX export failed', exc_types=(Exception, )):
        names = export_onnx(module, example, args.out, dynamic)
    size_mb = osp.getsize(args.out) / 2**20
    print(f'exported {args.out} ({size_mb:.1f} MiB) in '
          f'{time.perf_counter() - t0:.0f} s: input images '
          f'({"B, 3, H, W" if dynamic else f"{batch}, 3, {H}, {W}"}), outputs '
          f'{", ".join(names)}')

    # Check shapes, other batches and sizes off the 32-grid and off the
    # windows: one with more windows per stage than traced, one with fewer.
    if args.check_shape:
        shapes = [tuple(s) for s in args.check_shape]
    elif dynamic:
        shapes = [(1, unaligned_size(th * 5 // 4, windows),
                   unaligned_size(tw * 5 // 4, windows)),
                  (batch + 1, unaligned_size(H // 2 + 7, windows),
                   unaligned_size(W // 2 + 21, windows))]
    else:
        shapes = [(batch, H, W)]
    if not dynamic and any(s != (batch, H, W) for s in shapes):
        fail(f'--check-shape {shapes}: a file exported without --dynamic only '
             f'takes ({batch}, 3, {H}, {W}); add --dynamic')

    session = onnx_session(args.out)
    worst = 0.
    for b, h, w in shapes:
        images = torch.randn(b, 3, h, w)
        with report_user_errors(
                f'ONNX Runtime check at ({b}, 3, {h}, {w}) failed',
                exc_types=(Exception, )):
            diff, name = check_with_onnxruntime(reference, session, images, names)
        print(f'check ({b}, 3, {h}, {w}): max |onnxruntime - pytorch| = '
              f'{diff:.2e} ({name})')
        worst = max(worst, diff)
    if worst > args.tolerance:
        fail(f'ONNX Runtime and PyTorch differ by {worst:.2e} > '
             f'{args.tolerance:g}: {args.out} does not compute what the model '
             f'computes (please report it)')
    print(f'OK: max |onnxruntime - pytorch| = {worst:.2e} <= {args.tolerance:g} '
          f'on {len(shapes)} shape(s)')


if __name__ == '__main__':
    main()
