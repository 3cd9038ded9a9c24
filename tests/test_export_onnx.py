"""ONNX export with dynamic shapes (gcvit_mm.deploy and
tools/deploy/export_onnx.py), checked with ONNX Runtime on shapes the export
did not use. Needs the deploy extra (bash tools/install.sh --deploy)."""
import os.path as osp
import re

import pytest
import torch

EXTRA = 'the deploy extra is not installed: bash tools/install.sh --deploy'
pytest.importorskip('onnxruntime', reason=EXTRA)
pytest.importorskip('onnxscript', reason=EXTRA)
onnx = pytest.importorskip('onnx', reason=EXTRA)
from gcvit_mm.deploy import exporter_unavailable  # noqa: E402

# test_supported_versions.py checks the tool's one line on such a torch.
needs_exporter = pytest.mark.skipif(exporter_unavailable() is not None,
                                    reason=str(exporter_unavailable()))

from conftest import randomize_  # noqa: E402
from detection_utils import REPO, run_tool  # noqa: E402
from gcvit_mm import GCViT  # noqa: E402
from gcvit_mm.deploy import (ExportableAdaptiveAvgPool2d,  # noqa: E402
                             check_with_onnxruntime, export_onnx,
                             onnx_session, run_onnx,
                             share_duplicate_initializers, trace_size,
                             unaligned_size)

TOLERANCE = 1e-4


def _input_dims(path):
    dims = onnx.load(path).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_param or d.dim_value for d in dims]


@needs_exporter
def test_gcvit_t_backbone_exports_with_dynamic_batch_and_size(tmp_path):
    """GC ViT-T (ImageNet windows 7, 7, 14, 7) traced at 2x3x256x256 (two
    windows per stage, see trace_size) with border='pad', against the
    default (fold) model in PyTorch at three other shapes: 224 with batch 3
    (one window in stages 2 and 3; every token generator lands on exactly
    one window: the resize at scale 1 that export keeps), 97x130 and
    451x517 (not multiples of 32, every stage pads; the latter with more
    windows than traced). Without onnxscript's optimizer, to save 25 s: the
    tool's test below runs it."""
    assert trace_size(224, (7, 7, 14, 7)) == 225
    model = randomize_(GCViT('tiny')).eval()
    export = GCViT('tiny', border='pad')
    export.load_state_dict(model.state_dict())
    path = str(tmp_path / 'gcvit_t.onnx')
    names = export_onnx(export, torch.randn(2, 3, 256, 256), path,
                        dynamic=True, optimize=False)
    assert names == ['feat0', 'feat1', 'feat2', 'feat3']
    dims = _input_dims(path)
    assert dims[1] == 3 and all(isinstance(d, str) for d in dims[::2] +
                                dims[3:])
    # Each block's relative-position index is stored once per window size
    # (stages 0, 1, 3: window 7; stage 2: 14), not once per block.
    inits = onnx.load(path).graph.initializer
    contents = [(i.data_type, tuple(i.dims), i.raw_data) for i in inits]
    assert len(set(contents)) == len(contents)
    index_shapes = sorted(tuple(i.dims) for i in inits
                          if i.data_type == onnx.TensorProto.INT64
                          and len(i.dims) == 2 and i.dims[0] == i.dims[1])
    assert index_shapes == [(49, 49), (196, 196)]
    session = onnx_session(path)
    for shape in ((3, 3, 224, 224), (1, 3, 97, 130), (1, 3, 451, 517)):
        images = torch.randn(*shape)
        diff, _ = check_with_onnxruntime(model, session, images, names)
        assert diff <= TOLERANCE, (shape, diff)
        # Not trivially small either: the outputs are LayerNorm'd maps.
        with torch.no_grad():
            assert model(images)[3].abs().max() > 1


@needs_exporter
def test_export_tool_exports_the_toy_upernet_with_dynamic_shapes(tmp_path):
    out = str(tmp_path / 'seg.onnx')
    result = run_tool(['deploy/export_onnx.py',
                       osp.join(REPO, 'configs/upernet/gcvit_xxt_toy_ade.py'),
                       '--out', out, '--shape', 128, 128, '--dynamic'],
                      str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert '-> segmentor (random weights)' in result.stdout
    assert '4 adaptive average pools exported' in result.stdout
    assert 'traced at 129x129 instead of 128x128' in result.stdout
    checks = re.findall(r'check \((\d+), 3, (\d+), (\d+)\): max '
                        r'\|onnxruntime - pytorch\| = (\S+) \(logits\)',
                        result.stdout)
    assert len(checks) == 2, result.stdout
    for b, h, w, diff in checks:
        # other batches than the export's 2, sizes off the 32-grid and
        # maps off the windows (4): every stage pads
        assert int(b) != 2 and int(h) % 32 and int(w) % 32
        assert float(diff) <= TOLERANCE
    assert re.search(r'^OK: max \|onnxruntime - pytorch\| = \S+ <= 0.0001 '
                     r'on 2 shape\(s\)$', result.stdout, re.M)
    assert _input_dims(out)[1] == 3
    assert all(isinstance(d, str) for d in _input_dims(out)[::2])


@needs_exporter
def test_export_tool_bad_input_is_one_line(tmp_path):
    result = run_tool(['deploy/export_onnx.py', 'configs/nope.py', '--out',
                       str(tmp_path / 'm.onnx'), '--shape', 64, 64],
                      str(tmp_path), timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        'error: config file not found: configs/nope.py')


@pytest.mark.parametrize('output_size', [1, 2, 3, 6, (2, 5)])
def test_exportable_adaptive_pool_matches_torch(output_size):
    pool = ExportableAdaptiveAvgPool2d(output_size)
    for hw in ((7, 9), (32, 32), (5, 3), (13, 40)):
        x = torch.randn(2, 4, *hw)
        torch.testing.assert_close(
            pool(x), torch.nn.AdaptiveAvgPool2d(output_size)(x),
            rtol=1e-6, atol=1e-6)


def test_unaligned_size_pads_every_stage():
    n = unaligned_size(128, (4, 4, 4, 4))
    assert n == 129 and n % 32
    assert all(-(-n // 2**(i + 2)) % 4 for i in range(4))


@needs_exporter
def test_duplicate_constants_are_stored_once_with_the_same_results(tmp_path):
    """Two equal constants (as every GC ViT block's position index) become
    one, also where a subgraph (an If branch) uses them; a constant equal
    in bytes but not in shape stays apart. ONNX Runtime gives the same
    output before and after."""
    from onnx import helper, numpy_helper
    import numpy as np

    def const(name, array):
        return numpy_helper.from_array(np.asarray(array, np.float32), name)

    branch = helper.make_graph(
        [helper.make_node('Add', ['images', 'b'], ['y_then'])], 'then', [],
        [helper.make_tensor_value_info('y_then', onnx.TensorProto.FLOAT,
                                       [2, 2])])
    graph = helper.make_graph(
        [helper.make_node('Add', ['images', 'a'], ['s']),
         helper.make_node('Mul', ['s', 'c'], ['t']),
         helper.make_node('ReduceSum', ['t'], ['total'], keepdims=0),
         helper.make_node('Greater', ['total', 'zero'], ['cond']),
         helper.make_node('If', ['cond'], ['y'], then_branch=branch,
                          else_branch=branch)],
        'g', [helper.make_tensor_value_info('images', onnx.TensorProto.FLOAT,
                                            [2, 2])],
        [helper.make_tensor_value_info('y', onnx.TensorProto.FLOAT, [2, 2])],
        [const('a', [[1, 2], [3, 4]]), const('b', [[1, 2], [3, 4]]),
         const('c', [[[1]], [[2]], [[3]], [[4]]]), const('zero', -100.)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('',
                                                                        18)])
    before, after = str(tmp_path / 'before.onnx'), str(tmp_path / 'after.onnx')
    onnx.save(model, before)
    assert share_duplicate_initializers(model) == 16  # b: 4 floats
    onnx.save(model, after)
    onnx.checker.check_model(after)
    assert sorted(i.name for i in model.graph.initializer) == ['a', 'c',
                                                                'zero']
    x = torch.tensor([[0.5, -1.], [2., 0.]])
    expected, = run_onnx(onnx_session(before), x)
    got, = run_onnx(onnx_session(after), x)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got, x.numpy() + [[1, 2], [3, 4]])
