"""Embedded toy datasets, generated on first use, for CPU training and tests.

- :mod:`gcvit_mm.datasets.toy_coco`: ``ToyShapesCocoDataset``, COCO-format
  instance segmentation (circles, squares, triangles) for mmdet.
- :mod:`gcvit_mm.datasets.toy_ade`: ``ToyADE20KDataset``, ADE20K-format
  semantic segmentation for mmseg.

Configs import the module they need (``custom_imports=dict(imports=[
'gcvit_mm', 'gcvit_mm.datasets.toy_coco'])``), so nothing is imported here:
``toy_coco`` pulls in mmdet and ``toy_ade`` mmseg, and a detection user need
not have mmseg, nor pay for importing it.

This file must exist: without it the folder is a namespace package, which
``find_packages`` skips, so a built wheel leaves the datasets out, and an
install could import another checkout's ``gcvit_mm.datasets`` instead.
"""
