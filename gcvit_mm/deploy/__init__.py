"""Deployment: ONNX export of GC ViT detectors' and segmentors' tensor
forward, checked against ONNX Runtime (needs the optional extra:
``bash tools/install.sh --deploy``)."""
from .onnx_export import (EXPORT_BORDER, ExportableAdaptiveAvgPool2d,
                          ExportError, check_with_onnxruntime, export_onnx,
                          exporter_unavailable, onnx_session, run_onnx,
                          share_duplicate_initializers, tensor_forward,
                          trace_size, unaligned_size, use_export_border,
                          use_exportable_pools)

__all__ = [
    'EXPORT_BORDER', 'ExportableAdaptiveAvgPool2d', 'ExportError',
    'check_with_onnxruntime', 'export_onnx', 'exporter_unavailable',
    'onnx_session', 'run_onnx',
    'share_duplicate_initializers', 'tensor_forward', 'trace_size',
    'unaligned_size', 'use_export_border', 'use_exportable_pools'
]
