# Params and FLOPs of a detector (or segmentor) config with mmengine's
# complexity counter, next to the paper's numbers.
#
# Counted like the paper's mmdet 2.x `forward_dummy`: one image of --shape,
# backbone + neck + RPN head convolutions + RoI heads on 1000 proposals (mask
# head on the first 100). One FLOP is one multiply-add, as in mmcv and
# mmengine. Two counts from one trace:
#   * with attention: the backbone's attention matmuls (q @ k^T and attn @ v)
#     counted. mmengine counts aten::matmul but not the fused
#     scaled_dot_product_attention, so we trace GCViT(use_sdpa=False), whose
#     plain-math attention gives the same outputs, with border='pad': every
#     window padded to whole, as the paper's code computes it.
#   * without attention: the same minus those matmuls, as mmcv 1.x's
#     module-hook counter, which the paper used, never saw them.
import argparse
import os.path as osp
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
import torch  # noqa: E402
from mmengine.config import DictAction  # noqa: E402
from mmengine.model import revert_sync_batchnorm  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from gcvit_mm.engine.checks import check_backbones  # noqa: E402
from gcvit_mm.utils import (load_config, report_user_errors,  # noqa: E402
                            scope_of)

# (params M, GFLOPs at 1280x800) from the paper's COCO table.
PAPER = {
    'mask_rcnn/gcvit_t_coco.py': (48, 291),
    'cascade/gcvit_t_coco.py': (85, 770),
    'cascade/gcvit_s_coco.py': (108, 866),
    'cascade/gcvit_b_coco.py': (146, 1018),
}
NUM_PROPOSALS = 1000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Params and FLOPs of a model config (mmengine counter)')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[1280, 800],
        metavar=('H', 'W'),
        help='input image height and width (default: 1280 800, the '
        "paper's `--shape 1280 800`)")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config (key=value)')
    return parser.parse_args(argv)


def _tensors(obj):
    """All tensors in nested tuples/lists: the trace keeps only the ops
    that reach an output, so every head output must be one."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item)


def image_sample(shape):
    """The DetDataSample of one unpadded, unscaled image of ``shape``."""
    from mmdet.structures import DetDataSample
    h, w = shape
    return DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w),
        batch_input_shape=(h, w), scale_factor=(1., 1.)))


class DetDummy(torch.nn.Module):
    """mmdet 2.x's ``forward_dummy``: features, RPN head, RoI heads on fixed
    random proposals (no NMS, so the count does not depend on weights)."""

    what = f'; {NUM_PROPOSALS} proposals (mask head: first 100)'

    def __init__(self, detector, shape):
        super().__init__()
        self.detector = detector
        self.shape = shape
        # Proposals drawn here, not in forward: the JIT tracer of torch 2.0
        # and 2.1 rejects a Generator argument.
        h, w = shape
        gen = torch.Generator().manual_seed(0)
        half = torch.tensor([w / 2, h / 2])
        xy = torch.rand(NUM_PROPOSALS, 2, generator=gen) * half
        wh = torch.rand(NUM_PROPOSALS, 2, generator=gen) * half + 8
        self.proposal_boxes = torch.cat([xy, xy + wh], 1)

    def forward(self, img):
        from mmengine.structures import InstanceData
        det = self.detector
        x = det.extract_feat(img)
        outs = ()
        if getattr(det, 'with_rpn', False):
            outs += tuple(_tensors(det.rpn_head(x)))
        if hasattr(det, 'roi_head'):
            proposals = InstanceData(
                bboxes=self.proposal_boxes.to(img.device))
            sample = image_sample(self.shape)
            roi_head = det.roi_head
            if hasattr(roi_head, 'num_stages'):
                # Cascade: mmdet 2.x CascadeRoIHead.forward_dummy, every box
                # stage on the 1000 proposals, every mask stage on the first
                # 100 (mmdet 3's forward runs the masks on all of them).
                from mmdet.structures.bbox import bbox2roi
                rois = bbox2roi([proposals.bboxes])
                for i in range(roi_head.num_stages):
                    res = roi_head._bbox_forward(i, x, rois)
                    outs += (res['cls_score'], res['bbox_pred'])
                if roi_head.with_mask:
                    for i in range(roi_head.num_stages):
                        outs += (roi_head._mask_forward(
                            i, x, rois[:100])['mask_preds'], )
            else:
                outs += tuple(_tensors(
                    roi_head.forward(x, [proposals], [sample])))
        return outs + tuple(x)


class DetrDummy(torch.nn.Module):
    """A DETR-family detector (DINO) in inference: features, encoder,
    query selection, decoder and heads for one unpadded image. mmengine
    does not count grid_sample, the core of deformable attention."""

    what = '; DETR-style: encoder, decoder and heads'

    def __init__(self, detector, shape):
        super().__init__()
        self.detector = detector
        self.shape = shape

    def forward(self, img):
        return tuple(_tensors(
            self.detector._forward(img, [image_sample(self.shape)])))


def dummy_for(model, shape):
    """(module to count, what it covers): a detector's dummy forward, or a
    segmentor (or anything else) in its tensor mode."""
    if hasattr(model, 'forward_transformer'):  # DINO and its DETR family
        dummy = DetrDummy(model, shape)
    elif hasattr(model, 'roi_head') or hasattr(model, 'rpn_head'):
        dummy = DetDummy(model, shape)
    else:
        model.forward = lambda inputs: model._forward(inputs)
        return model, ''
    return dummy, dummy.what


def count(cfg, shape):
    """(params, FLOPs with the attention matmuls, FLOPs without them,
    what the count covers) from one trace of the model with
    GCViT(use_sdpa=False, border='pad')."""
    from mmengine.analysis import FlopAnalyzer, parameter_count
    from mmengine.registry import MODELS
    cfg = cfg.copy()
    backbone = cfg.model.backbone
    if backbone.get('type') == 'GCViT':
        backbone['use_sdpa'] = False  # plain q @ k^T and attn @ v matmuls
        backbone['border'] = 'pad'  # padded windows, as the paper computes
    backbone.pop('init_cfg', None)  # FLOPs do not need weights
    model = revert_sync_batchnorm(MODELS.build(cfg.model)).eval()
    h, w = shape
    img = torch.zeros(1, 3, h, w)
    wrapped, what = dummy_for(model, shape)
    with torch.no_grad():
        analyzer = FlopAnalyzer(wrapped, (img, ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        total = analyzer.total()
        # GCViT's attention is the only aten::matmul (Linear layers are
        # addmm/linear, convolutions conv), so 'matmul' is the attention.
        attention = analyzer.by_operator().get('matmul', 0)
    params = parameter_count(wrapped)['']
    return params, total, total - attention, what


def main(argv=None):
    args = parse_args(argv)
    with report_user_errors():
        cfg = load_config(args.config, args.cfg_options)
        init_default_scope(scope_of(cfg))
        check_backbones(cfg)
    h, w = args.shape
    params, flops_attn, flops_no_attn, what = count(cfg, (h, w))

    key = '/'.join(osp.abspath(args.config).split(osp.sep)[-2:])
    paper = PAPER.get(key)
    line = '=' * 64
    print(line)
    print(f'Config: {args.config}')
    print(f'Input shape: (1, 3, {h}, {w}){what}; 1 FLOP = 1 multiply-add')
    print(f'Params: {params / 1e6:.1f} M')
    print(f'FLOPs (mmengine, with attention matmuls):    '
          f'{flops_attn / 1e9:.2f} G')
    print(f'FLOPs (without attention matmuls, as mmcv 1.x): '
          f'{flops_no_attn / 1e9:.2f} G')
    print(f'Attention matmuls (q @ k^T, attn @ v):          '
          f'{(flops_attn - flops_no_attn) / 1e9:.3f} G')
    if paper:
        p_params, p_flops = paper
        print(f'Paper (mmcv 1.x counter, 1280x800): {p_params} M params, '
              f'{p_flops} GFLOPs -> ours: params '
              f'{100 * (params / 1e6 / p_params - 1):+.1f}%, FLOPs without '
              f'attention {100 * (flops_no_attn / 1e9 / p_flops - 1):+.1f}%, '
              f'with {100 * (flops_attn / 1e9 / p_flops - 1):+.1f}%')
    print(line)
    print('!!! RoIAlign and other custom (mmcv) ops are not counted. '
          'Check the numbers before using them in a paper.')
    return dict(params=params, flops=flops_attn,
                flops_without_attention=flops_no_attn)


if __name__ == '__main__':
    main()
