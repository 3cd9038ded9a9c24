"""ONNX export of a model's tensor forward (torch.onnx's dynamo exporter)
and its check against ONNX Runtime on CPU.

What gets exported (:func:`tensor_forward`): a detector's backbone + neck
(``extract_feat``: the neck's feature maps), or a segmentor's tensor forward
(``_forward``: decode-head logits at 1/4 of the input size). Inputs are
images after the model's data preprocessor (normalised, channels as it
orders them), shape (B, 3, H, W).

GC ViT blocks attend in the partial windows at the map border either by
folding the padding into one key ('fold', fast, but it branches in Python
on the map size: torch.export cannot export it with dynamic sizes) or by
padding the map to whole windows ('pad', the paper's recipe, free of such
branches). :func:`use_export_border` selects 'pad' in a model config; the
outputs agree within float tolerance (tests/test_speed_paths.py).
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from ..utils.config import typed_dicts

EXPORT_BORDER = 'pad'
# Opset 18: the newest that TensorRT 8.6+ and ONNX Runtime >= 1.14 both
# parse; SDPA exports as MatMul/Softmax there (opset 23 would use the
# Attention op, which fewer runtimes have).
OPSET = 18
INPUT_NAME = 'images'


class ExportError(Exception):
    """The export or its check failed; the message is one line."""


def exporter_unavailable() -> Optional[str]:
    """Why this torch cannot run :func:`export_onnx` (one line), or None.

    The export needs torch.onnx's dynamo exporter with
    ``torch.export.Dim.DYNAMIC`` (torch 2.6); torch 2.0 and 2.1 lack both.
    """
    dim = getattr(getattr(torch, 'export', None), 'Dim', None)
    if dim is None or not hasattr(dim, 'DYNAMIC'):
        return (f"the ONNX exporter needs torch >= 2.6 (torch.onnx's dynamo "
                f'exporter with torch.export.Dim.DYNAMIC); this is torch '
                f'{torch.__version__}')
    return None


def use_export_border(model_cfg: dict) -> int:
    """Set ``border='pad'`` in every GCViT backbone dict of a model config
    (in place); returns how many were set."""
    backbones = [node for _, node in typed_dicts(model_cfg)
                 if node['type'] == 'GCViT']
    for node in backbones:
        node['border'] = EXPORT_BORDER
    return len(backbones)


def _pool_matrix(size, bins: int, like: torch.Tensor) -> torch.Tensor:
    """(bins, size) matrix whose row i averages [floor(i * size / bins),
    ceil((i + 1) * size / bins)): adaptive average pooling's bins along one
    axis, built from ``size`` with tensor ops (symbolic under export)."""
    j = torch.arange(size, device=like.device)
    i = torch.arange(bins, device=like.device)[:, None]
    start = i * size // bins
    end = ((i + 1) * size + bins - 1) // bins
    inside = ((j >= start) & (j < end)).to(like.dtype)
    return inside / (end - start).to(like.dtype)


class ExportableAdaptiveAvgPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d`` for any input size in one exported graph.

    torch.onnx lowers ``adaptive_avg_pool2d`` to a gather whose indices are
    computed from the example's size (ONNX has no adaptive pool except the
    global one), so the file fails at other sizes ("GatherND: invalid
    index"). Here the bins are two averaging matrices built from the size:
    (B, C, H, W) -> (B, C, oh, ow), the same values as PyTorch's.
    """

    def __init__(self, output_size) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        oh, ow = ((self.output_size, ) * 2 if isinstance(
            self.output_size, int) else self.output_size)
        oh = x.shape[-2] if oh is None else oh
        ow = x.shape[-1] if ow is None else ow
        rows = _pool_matrix(x.shape[-2], oh, x)  # (oh, H)
        cols = _pool_matrix(x.shape[-1], ow, x)  # (ow, W)
        return rows @ x @ cols.t()


def use_exportable_pools(model: nn.Module) -> int:
    """Replace every ``nn.AdaptiveAvgPool2d`` of ``model`` (e.g. in mmseg's
    pyramid pooling) by :class:`ExportableAdaptiveAvgPool2d`, in place;
    returns how many."""
    swaps = [(parent, name, child)
             for parent in model.modules()
             for name, child in parent.named_children()
             if type(child) is nn.AdaptiveAvgPool2d]
    for parent, name, child in swaps:
        setattr(parent, name, ExportableAdaptiveAvgPool2d(child.output_size))
    return len(swaps)


class _TensorForward(nn.Module):
    """(B, 3, H, W) images -> the model's output tensors (see module doc)."""

    def __init__(self, model: nn.Module, kind: str) -> None:
        super().__init__()
        self.model = model
        self.kind = kind

    def forward(self, images: torch.Tensor):
        if self.kind == 'segmentor':
            return self.model._forward(images)
        return tuple(self.model.extract_feat(images))


def tensor_forward(model: nn.Module) -> nn.Module:
    """Wrap an mmseg segmentor (``decode_head``) or an mmdet detector
    (``extract_feat``) as a module of images only; ``.kind`` says which."""
    if hasattr(model, 'decode_head') and hasattr(model, '_forward'):
        return _TensorForward(model, 'segmentor')
    if hasattr(model, 'extract_feat'):
        return _TensorForward(model, 'backbone+neck')
    raise ExportError(f'cannot export a {type(model).__name__}: only mmdet '
                      f'detectors (extract_feat) and mmseg segmentors '
                      f'(decode_head) are supported')


def output_names(module: nn.Module, example: torch.Tensor) -> List[str]:
    """'logits' for a segmentor, 'feat0', 'feat1', ... for features."""
    with torch.no_grad():
        outs = module(example)
    if isinstance(outs, torch.Tensor):
        return ['logits']
    return [f'feat{i}' for i in range(len(outs))]


def export_onnx(module: nn.Module, example: torch.Tensor, path: str,
                dynamic: bool, optimize: bool = True) -> List[str]:
    """Export ``module`` (eval, no gradients) at ``example`` to ``path``.

    Args:
        module: Takes one (B, 3, H, W) tensor.
        example: (B, 3, H, W) input used for tracing. With ``dynamic``, B
            must be >= 2 and H, W at least :func:`trace_size`: a size-1
            dimension (batch, window count) becomes a constant.
        path: Output file (weights inside: no external data; constants
            stored several times are stored once, see
            :func:`share_duplicate_initializers`).
        dynamic: Batch, height and width dynamic; else the example's shape.
        optimize: Run onnxscript's graph optimizer (constant folding, fused
            patterns; 40% of the export time for GC ViT-T). ONNX Runtime
            optimizes the graph again when it loads it.

    Returns:
        The output names. Raises :class:`ExportError` when a dynamic export
        came out with a fixed input dimension (torch.onnx falls back to
        static shapes when torch.export cannot keep them symbolic).
    """
    import onnx
    reason = exporter_unavailable()
    if reason:
        raise ExportError(reason)
    module.eval().requires_grad_(False)
    names = output_names(module, example)
    dims = None
    if dynamic:
        # DYNAMIC, not named Dims with bounds: the models guard on sizes
        # (e.g. "at least 2 windows"), which named Dims turn into errors.
        dyn = torch.export.Dim.DYNAMIC
        dims = ({0: dyn, 2: dyn, 3: dyn}, )
    with torch.no_grad():
        torch.onnx.export(
            module, (example, ), path, dynamo=True, dynamic_shapes=dims,
            input_names=[INPUT_NAME], output_names=names,
            opset_version=OPSET, external_data=False, optimize=optimize,
            verbose=False)
    model = onnx.load(path)
    if share_duplicate_initializers(model):
        onnx.save(model, path)
    if dynamic:
        shape = model.graph.input[0].type.tensor_type.shape.dim
        fixed = [i for i in (0, 2, 3) if shape[i].HasField('dim_value')]
        if fixed:
            raise ExportError(
                f'the exported input has fixed dimension(s) {fixed} '
                f'({[d.dim_value or d.dim_param for d in shape]}): the model '
                f'branches on its input size; export GC ViT with '
                f"border='{EXPORT_BORDER}'")
    return names


def share_duplicate_initializers(model) -> int:
    """Keep one copy of each constant that the ONNX ``model`` (a
    ``ModelProto``, edited in place) stores several times; returns the
    bytes saved.

    Every GC ViT block holds its own relative-position index, a
    non-persistent int64 buffer of (w^2)^2 entries (2.5 MiB at window 24),
    and the exporter writes one initializer per block although all blocks
    of a window size hold the same values: 78 of the 189 MiB of a GC ViT-T
    w24 backbone. Equal dtype, shape and bytes is equal value, so pointing
    every user at the first copy changes nothing that runs.
    """
    import hashlib

    from onnx import numpy_helper
    graph = model.graph
    first: Dict[tuple, str] = {}
    rename: Dict[str, str] = {}
    kept = []
    saved = 0
    for init in graph.initializer:
        array = numpy_helper.to_array(init)
        key = (array.dtype.str, array.shape,
               hashlib.sha256(array.tobytes()).digest())
        if key in first:
            rename[init.name] = first[key]
            saved += array.nbytes
        else:
            first[key] = init.name
            kept.append(init)
    if not rename:
        return 0
    graphs = [graph]
    while graphs:  # the main graph and any subgraph (If / Loop bodies)
        g = graphs.pop()
        for node in g.node:
            for i, name in enumerate(node.input):
                node.input[i] = rename.get(name, name)
            for attr in node.attribute:
                graphs.extend([attr.g] if attr.HasField('g') else [])
                graphs.extend(attr.graphs)
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return saved


def onnx_session(path: str, threads: Optional[int] = None):
    """An ONNX Runtime CPU session of ``path`` (``threads``: intra-op
    threads, default: ONNX Runtime's choice)."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(path, options,
                                providers=['CPUExecutionProvider'])


def run_onnx(session, images: torch.Tensor) -> List[np.ndarray]:
    """Outputs of the session for (B, 3, H, W) ``images``."""
    return session.run(None, {INPUT_NAME: images.numpy()})


def check_with_onnxruntime(module: nn.Module, session, images: torch.Tensor,
                           names: Sequence[str]) -> Tuple[float, str]:
    """(max |ONNX Runtime - PyTorch| over all outputs, the output where it
    is largest) for ``images``; an :class:`ExportError` when the outputs'
    count or shapes differ."""
    with torch.no_grad():
        expected = module(images)
    if isinstance(expected, torch.Tensor):
        expected = (expected, )
    got = run_onnx(session, images)
    if len(got) != len(expected):
        raise ExportError(f'ONNX Runtime gives {len(got)} outputs, PyTorch '
                          f'{len(expected)}')
    worst: Dict[str, float] = {}
    for name, a, b in zip(names, got, expected):
        if a.shape != tuple(b.shape):
            raise ExportError(
                f'output {name} at input {tuple(images.shape)}: ONNX Runtime '
                f'gives shape {a.shape}, PyTorch {tuple(b.shape)}')
        worst[name] = float(np.abs(a - b.numpy()).max())
    name = max(worst, key=worst.get)
    return worst[name], name


def trace_size(size: int, windows: Sequence[int] = ()) -> int:
    """The smallest size >= ``size`` at which every stage's map
    (ceil(size / 2^(i+2))) spans at least two of its windows.

    torch.export treats a dimension of size 1 in the example as the constant
    1 (its "0/1 specialisation"); a stage whose map fits in one window has
    window counts of 1, and the file then computes garbage, or fails, once
    an input makes that stage span more windows (ONNX Runtime: "Attempting
    to broadcast an axis by a dimension other than 1. 196 by 1764" for
    GC ViT-T traced at 224). Tracing at this size keeps them symbolic; the
    file still runs at sizes with one window per stage.
    """
    need = [2**(i + 2) * w + 1 for i, w in enumerate(windows)]
    return max([size, 64] + need)


def unaligned_size(start: int, windows: Sequence[int] = (),
                   minimum: int = 33) -> int:
    """The size nearest to ``start`` (at least ``minimum``) that is not a
    multiple of 32 and whose stride-4..32 maps (ceil(size / 2^(i+2))) are
    not multiples of the stage windows ``windows``, so that every stage
    pads: a size that an export at a 32-aligned size does not cover."""
    def awkward(n: int) -> bool:
        maps = [math.ceil(n / 2**(i + 2)) for i in range(len(windows))]
        return n % 32 != 0 and all(m % w for m, w in zip(maps, windows))
    for step in range(4 * start):
        for n in (start - step, start + step):
            if n >= minimum and awkward(n):
                return n
    raise ValueError(f'no unaligned size near {start}')
