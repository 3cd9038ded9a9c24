"""Embedded toy instance-segmentation set in COCO format ("shapes").

Circles, squares and triangles of varied sizes, colours and rotations, which
may overlap (later shapes occlude earlier ones; masks are the visible parts)
on noisy two-tone backgrounds. Everything is deterministic from the seed.
Layout (COCO style, real JPEG files)::

    <root>/train/000000.jpg ...      <root>/annotations/instances_train.json
    <root>/val/000000.jpg ...        <root>/annotations/instances_val.json
    <root>/toy_coco.json             (generator version and settings)

:class:`ToyShapesCocoDataset` (an mmdet ``CocoDataset``) creates the files on
first use when ``data_root`` does not exist yet, atomically (see
:mod:`gcvit_mm.datasets.generated_folder`: concurrent torchrun ranks never
see half a dataset, and a set made with other settings is refused).

Command line: ``python -m gcvit_mm.datasets.toy_coco [ROOT]``.
"""
import json
import os
import os.path as osp
import sys
from typing import List, Optional, Tuple

import cv2
import numpy as np

from .generated_folder import ensure_generated_folder

CLASSES = ('circle', 'square', 'triangle')
PALETTE = [(220, 20, 60), (0, 130, 200), (60, 180, 75)]
VERSION = 1
DEFAULTS = dict(num_train=400, num_val=50, img_size=128, min_shapes=1,
                max_shapes=4, min_side=20, max_side=60, seed=0)
DEFAULT_ROOT_ENV = 'GCVIT_MM_DATA'
META_FILE = 'toy_coco.json'  # the generator's version and settings


def default_root() -> str:
    """``$GCVIT_MM_DATA/toy_coco`` or ``data/toy_coco`` (relative to the
    working directory, like mmdet's ``data/coco``)."""
    return osp.join(os.environ.get(DEFAULT_ROOT_ENV, 'data'), 'toy_coco')


def _shape_mask(kind: int, cx: float, cy: float, side: float, angle: float,
                size: int) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    if kind == 0:  # circle
        cv2.circle(mask, (int(round(cx)), int(round(cy))),
                   int(round(side / 2)), 1, -1, lineType=cv2.LINE_8)
        return mask
    if kind == 1:  # square
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * side / 2
    else:  # equilateral triangle, centred on its centroid
        r = side / np.sqrt(3)
        corners = np.array([[r * np.cos(t), r * np.sin(t)]
                            for t in np.deg2rad([-90, 30, 150])])
    rot = np.array([[np.cos(angle), -np.sin(angle)],
                    [np.sin(angle), np.cos(angle)]])
    pts = corners @ rot.T + [cx, cy]
    cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
    return mask


def _polygons(mask: np.ndarray) -> List[List[float]]:
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    polys = []
    for contour in contours:
        if len(contour) >= 3 and cv2.contourArea(contour) >= 4:
            polys.append(contour.reshape(-1).astype(float).tolist())
    return polys


def render_image(rng: np.random.RandomState, size: int, min_shapes: int,
                 max_shapes: int, min_side: int,
                 max_side: int) -> Tuple[np.ndarray, list]:
    """One BGR image and its instances [(class index, visible mask)]."""
    # Two-tone background with a random split and noise.
    base = rng.randint(0, 256, size=(2, 3))
    img = np.empty((size, size, 3), np.float32)
    ys, xs = np.mgrid[:size, :size]
    split = (xs * rng.uniform(-1, 1) + ys * rng.uniform(-1, 1)) > rng.uniform(
        -size / 2, size / 2)
    img[...] = base[0]
    img[split] = base[1]
    img += rng.normal(0, 12, img.shape)

    masks, labels = [], []
    for _ in range(rng.randint(min_shapes, max_shapes + 1)):
        kind = rng.randint(len(CLASSES))
        side = rng.uniform(min_side, max_side)
        margin = side / 2
        cx, cy = rng.uniform(margin * 0.6, size - margin * 0.6, size=2)
        mask = _shape_mask(kind, cx, cy, side, rng.uniform(0, np.pi), size)
        if mask.sum() < 16:
            continue
        # A colour that stands out from the background under the shape.
        under = img[mask.astype(bool)].mean(0)
        for _ in range(20):
            colour = rng.randint(0, 256, size=3)
            if np.abs(colour - under).sum() > 150:
                break
        img[mask.astype(bool)] = colour + rng.normal(0, 6, 3)
        for earlier in masks:  # the new shape occludes the earlier ones
            earlier[mask.astype(bool)] = 0
        masks.append(mask)
        labels.append(kind)
    instances = []
    for kind, mask in zip(labels, masks):
        if mask.sum() >= 30:  # drop shapes that are (almost) hidden
            instances.append((kind, mask))
    return np.clip(img, 0, 255).astype(np.uint8), instances


def _write_split(root: str, split: str, num: int, seed: int,
                 settings: dict) -> None:
    os.makedirs(osp.join(root, split))
    images, annotations = [], []
    for idx in range(num):
        rng = np.random.RandomState([seed, 0 if split == 'train' else 1, idx])
        img, instances = render_image(
            rng, settings['img_size'], settings['min_shapes'],
            settings['max_shapes'], settings['min_side'],
            settings['max_side'])
        name = f'{idx:06d}.jpg'
        cv2.imwrite(osp.join(root, split, name), img,
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
        h, w = img.shape[:2]
        images.append(dict(id=idx, file_name=name, height=h, width=w))
        for kind, mask in instances:
            polys = _polygons(mask)
            if not polys:
                continue
            x, y, bw, bh = cv2.boundingRect(mask)
            annotations.append(
                dict(id=len(annotations) + 1, image_id=idx,
                     category_id=kind + 1, segmentation=polys,
                     area=float(mask.sum()),
                     bbox=[float(x), float(y), float(bw), float(bh)],
                     iscrowd=0))
    coco = dict(
        info=dict(description=f'gcvit_mm toy shapes ({split})',
                  version=str(VERSION)),
        images=images, annotations=annotations,
        categories=[dict(id=i + 1, name=name, supercategory='shape')
                    for i, name in enumerate(CLASSES)])
    with open(osp.join(root, 'annotations', f'instances_{split}.json'),
              'w') as f:
        json.dump(coco, f)


def ensure_toy_coco(root: Optional[str] = None,
                    any_settings: bool = False, **settings) -> str:
    """Generate the toy set at ``root`` (default :func:`default_root`)
    unless it is there already, made with the same ``settings`` (keys of
    :data:`DEFAULTS`; any settings with ``any_settings``). Returns ``root``.

    Raises:
        UserError: ``root`` exists but is not a toy set, or one made with
            other settings.
    """
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise TypeError(f'unknown toy COCO settings {unknown}; the settings '
                        f'are {sorted(DEFAULTS)}')
    settings = {**DEFAULTS, **settings}
    root = root or default_root()

    def write(folder: str) -> None:
        os.makedirs(osp.join(folder, 'annotations'))
        for split in ('train', 'val'):
            _write_split(folder, split, settings[f'num_{split}'],
                         settings['seed'], settings)

    return ensure_generated_folder(
        root, dict(version=VERSION, classes=CLASSES, **settings),
        META_FILE, write, 'toy COCO', any_settings=any_settings)


try:  # the dataset class needs mmdet; the generator above does not
    from mmdet.datasets import CocoDataset
    from mmdet.registry import DATASETS
except ImportError:  # pragma: no cover
    CocoDataset = None

if CocoDataset is not None:

    @DATASETS.register_module()
    class ToyShapesCocoDataset(CocoDataset):
        """mmdet ``CocoDataset`` over the embedded toy set, which is created
        under ``data_root`` on first use (see the module docstring).

        Args:
            gen_cfg (dict, optional): Settings of :func:`ensure_toy_coco`
                (keys of :data:`DEFAULTS`); a set at ``data_root`` made with
                others is refused. Default: None, any toy set found there,
                or the defaults when there is none.
            **kwargs: As :class:`mmdet.datasets.CocoDataset`.
        """

        METAINFO = dict(classes=CLASSES, palette=PALETTE)
        # The input checks skip their missing-path check for it.
        generates_missing_data = True

        def __init__(self, *args, data_root: str = '',
                     gen_cfg: Optional[dict] = None, **kwargs):
            data_root = data_root or default_root()
            ensure_toy_coco(data_root, any_settings=gen_cfg is None,
                            **(gen_cfg or {}))
            super().__init__(*args, data_root=data_root, **kwargs)


if __name__ == '__main__':
    out = ensure_toy_coco(sys.argv[1] if len(sys.argv) > 1 else None)
    print(out)
