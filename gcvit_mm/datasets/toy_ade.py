"""A small synthetic dataset in ADE20K's format, generated on first use.

It lets the segmentation configs be trained and evaluated end to end on a CPU
without downloading ADE20K (CI, smoke tests, a first look). The layout and the
label convention are ADE20K's::

    <data_root>/images/training/toy_00000.jpg        RGB JPEG
    <data_root>/annotations/training/toy_00000.png   8-bit single-channel PNG
    <data_root>/images/validation/...
    <data_root>/annotations/validation/...

Label 0 is "unlabeled" (object outlines and some clutter) and becomes 255 =
ignore under ``reduce_zero_label=True``; labels 1..7 are the classes of
:attr:`ToyADE20KDataset.METAINFO` (0..6 after the reduction). A scene is sky
over floor, maybe a wall on the horizon, and one to four objects (disk, box,
triangle, ring) with a class-typical but jittered colour and texture, random
size and placement, partly occluding each other, plus pixel noise. Colour alone
does not separate every class, so a model has to use shape and context too.

Generation is deterministic (``seed``; same files for the same arguments) and
atomic (:mod:`gcvit_mm.datasets.generated_folder`): parallel ranks
(``torchrun``) that all find the tree missing never read half-written files.
A ``toy_ade.json`` file records the generator arguments; asking for a
different configuration of an existing tree is an error rather than a silent
mix.

Use it by importing this module (``custom_imports=dict(imports=['gcvit_mm',
'gcvit_mm.datasets.toy_ade'])``) and ``dataset=dict(type='ToyADE20KDataset',
data_root=..., data_prefix=..., gen_cfg=dict(...))``.
"""
import os
import os.path as osp
from typing import Optional, Tuple

import cv2
import numpy as np
from mmseg.datasets import ADE20KDataset
from mmseg.registry import DATASETS

from .generated_folder import ensure_generated_folder

CLASSES = ('sky', 'floor', 'wall', 'disk', 'box', 'triangle', 'ring')
PALETTE = [[6, 230, 230], [80, 50, 50], [120, 120, 120], [255, 6, 82],
           [4, 200, 3], [255, 184, 6], [112, 9, 255]]
# Labels as stored in the PNGs (ADE convention: 0 = unlabeled).
UNLABELED, SKY, FLOOR, WALL, DISK, BOX, TRIANGLE, RING = range(8)
# Typical colour (BGR) of each object class; jittered per object.
OBJECT_COLOURS = {DISK: (60, 60, 200), BOX: (60, 170, 60),
                  TRIANGLE: (40, 190, 210), RING: (180, 60, 150)}

SPLITS = (('training', 'num_train'), ('validation', 'num_val'))
META_FILE = 'toy_ade.json'
DEFAULT_GEN_CFG = dict(num_train=200, num_val=40, img_size=(160, 160), seed=0)


def _texture(rng: np.random.RandomState, h: int, w: int, kind: str,
             scale: float) -> np.ndarray:
    """(h, w) float pattern in about [-1, 1]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if kind == 'stripes':
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(4, 9)
        return np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi /
                      period)
    if kind == 'checker':
        cell = int(rng.randint(3, 7))
        return ((xx // cell + yy // cell) % 2) * 2 - 1.
    if kind == 'dots':
        period = rng.uniform(5, 9)
        return np.cos(xx * 2 * np.pi / period) * np.cos(yy * 2 * np.pi /
                                                         period)
    # 'smooth': low-frequency blobs
    small = rng.uniform(-1, 1, (max(h // 16, 2), max(w // 16, 2)))
    return cv2.resize(small.astype(np.float32), (w, h),
                      interpolation=cv2.INTER_CUBIC) * scale


def _shape_mask(rng: np.random.RandomState, h: int, w: int,
                cls: int) -> np.ndarray:
    """uint8 mask of one object of class ``cls`` at a random place/size."""
    mask = np.zeros((h, w), np.uint8)
    size = rng.uniform(0.12, 0.3) * min(h, w)
    cx, cy = rng.uniform(size, w - size), rng.uniform(size, h - size)
    if cls == DISK:
        axes = (int(size), int(size * rng.uniform(0.7, 1.0)))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0,
                    360, 1, -1)
    elif cls == RING:
        cv2.circle(mask, (int(cx), int(cy)), int(size), 1, -1)
        cv2.circle(mask, (int(cx), int(cy)), int(size * 0.55), 0, -1)
    elif cls == BOX:
        rect = ((cx, cy), (2 * size, 2 * size * rng.uniform(0.5, 1.0)),
                rng.uniform(0, 90))
        cv2.fillPoly(mask, [cv2.boxPoints(rect).astype(np.int32)], 1)
    else:  # TRIANGLE
        angle = rng.uniform(0, 2 * np.pi) + np.arange(3) * 2 * np.pi / 3
        pts = np.stack([cx + size * 1.2 * np.cos(angle),
                        cy + size * 1.2 * np.sin(angle)], 1)
        cv2.fillPoly(mask, [pts.astype(np.int32)], 1)
    return mask.astype(bool)


def render_scene(rng: np.random.RandomState,
                 img_size: Tuple[int, int]) -> Tuple[np.ndarray, np.ndarray]:
    """One (BGR uint8 image (h, w, 3), uint8 label (h, w)) pair."""
    h, w = img_size
    img = np.zeros((h, w, 3), np.float32)
    label = np.zeros((h, w), np.uint8)
    rows = np.arange(h, dtype=np.float32)[:, None]

    horizon = int(rng.uniform(0.3, 0.65) * h)
    # sky: vertical blue gradient with soft clouds
    sky_top = np.array([200, 150, 90]) + rng.uniform(-25, 25, 3)
    sky_bottom = np.array([235, 210, 180]) + rng.uniform(-20, 20, 3)
    t = (rows / max(horizon, 1))[..., None]
    sky = sky_top * (1 - t) + sky_bottom * t + 25 * _texture(
        rng, h, w, 'smooth', 1.)[..., None]
    img[:horizon] = np.broadcast_to(sky, (h, w, 3))[:horizon]
    label[:horizon] = SKY
    # floor: brownish, textured
    floor_col = np.array([60, 90, 120]) + rng.uniform(-30, 30, 3)
    kind = rng.choice(['stripes', 'checker', 'smooth'])
    img[horizon:] = (floor_col + 30 * _texture(rng, h, w, kind, 1.)[..., None]
                     )[horizon:]
    label[horizon:] = FLOOR
    # wall: a grey brick-like block standing on the horizon, sometimes
    if rng.rand() < 0.7:
        x0 = int(rng.uniform(0, 0.6) * w)
        x1 = min(w, x0 + int(rng.uniform(0.25, 0.6) * w))
        y0 = max(0, horizon - int(rng.uniform(0.15, 0.3) * h))
        grey = rng.uniform(100, 150)
        bricks = ((rows // 6 % 2 == 0) | (np.arange(w)[None] % 12 < 1))
        wall = grey + 25 * bricks.astype(np.float32)
        img[y0:horizon, x0:x1] = wall[y0:horizon, x0:x1, None]
        label[y0:horizon, x0:x1] = WALL
    # objects, later ones occluding earlier ones, with unlabeled outlines
    for _ in range(rng.randint(1, 5)):
        cls = int(rng.choice(list(OBJECT_COLOURS)))
        mask = _shape_mask(rng, h, w, cls)
        colour = np.array(OBJECT_COLOURS[cls]) + rng.uniform(-50, 50, 3)
        kind = rng.choice(['stripes', 'checker', 'dots', 'smooth'])
        tex = colour + 35 * _texture(rng, h, w, kind, 1.)[..., None]
        img[mask] = tex[mask]
        label[mask] = cls
        outline = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_GRADIENT,
                                   np.ones((3, 3), np.uint8)).astype(bool)
        img[outline] = img[outline] * 0.4
        label[outline] = UNLABELED
    # clutter nobody annotated (ADE has plenty): label 0
    if rng.rand() < 0.3:
        cx, cy = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        r = int(rng.uniform(0.03, 0.08) * min(h, w))
        clutter = np.zeros((h, w), np.uint8)
        cv2.circle(clutter, (cx, cy), r, 1, -1)
        clutter = clutter.astype(bool)
        img[clutter] = rng.uniform(0, 255, 3)
        label[clutter] = UNLABELED
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), label


def _write_tree(root: str, num_train: int, num_val: int,
                img_size: Tuple[int, int], seed: int) -> None:
    counts = dict(num_train=num_train, num_val=num_val)
    for split_index, (split, count_key) in enumerate(SPLITS):
        img_dir = osp.join(root, 'images', split)
        ann_dir = osp.join(root, 'annotations', split)
        os.makedirs(img_dir)
        os.makedirs(ann_dir)
        for i in range(counts[count_key]):
            rng = np.random.RandomState([seed, split_index, i])
            img, label = render_scene(rng, img_size)
            name = f'toy_{i:05d}'
            cv2.imwrite(osp.join(img_dir, name + '.jpg'), img,
                        [cv2.IMWRITE_JPEG_QUALITY, 92])
            cv2.imwrite(osp.join(ann_dir, name + '.png'), label)


def make_toy_ade(root: str,
                 num_train: int = DEFAULT_GEN_CFG['num_train'],
                 num_val: int = DEFAULT_GEN_CFG['num_val'],
                 img_size: Tuple[int, int] = DEFAULT_GEN_CFG['img_size'],
                 seed: int = DEFAULT_GEN_CFG['seed'],
                 any_settings: bool = False) -> str:
    """Create the dataset under ``root`` unless it is already there.

    Args:
        root (str): Dataset root (``data_root`` of the configs).
        num_train (int): Training images. Default: 200.
        num_val (int): Validation images. Default: 40.
        img_size (tuple[int, int]): (height, width) of every image.
            Default: (160, 160).
        seed (int): Seed of the generator. Default: 0.
        any_settings (bool): Accept a toy set at ``root`` whatever settings
            it was made with. Default: False.

    Returns:
        str: ``root``.

    Raises:
        UserError: ``root`` exists but is not a toy set, or (unless
            ``any_settings``) one made with other settings.
    """
    meta = dict(classes=list(CLASSES), num_train=int(num_train),
                num_val=int(num_val), img_size=[int(s) for s in img_size],
                seed=int(seed))
    return ensure_generated_folder(
        root, meta, META_FILE,
        lambda folder: _write_tree(folder, meta['num_train'],
                                   meta['num_val'], tuple(meta['img_size']),
                                   meta['seed']),
        'toy ADE20K', any_settings=any_settings)


@DATASETS.register_module()
class ToyADE20KDataset(ADE20KDataset):
    """ADE20K-format synthetic dataset (7 classes), generated under
    ``data_root`` on first use; see the module docstring.

    Args:
        gen_cfg (dict, optional): Arguments of :func:`make_toy_ade`
            (num_train, num_val, img_size, seed); the train and the val
            dataset of a config must use the same. Default: ``None``, any
            toy set found at ``data_root``, or the defaults of
            :func:`make_toy_ade` when there is none.
        **kwargs: As :class:`mmseg.datasets.ADE20KDataset` (``data_root``
            is required).
    """
    METAINFO = dict(classes=CLASSES, palette=PALETTE)
    # The input checks skip their "dataset path exists" check for datasets
    # that create their files on first use.
    generates_missing_data = True

    def __init__(self, gen_cfg: Optional[dict] = None, **kwargs) -> None:
        data_root = kwargs.get('data_root')
        if not data_root:
            raise ValueError('ToyADE20KDataset needs a data_root to generate '
                             'the data in')
        make_toy_ade(data_root, any_settings=gen_cfg is None,
                     **(gen_cfg or {}))
        super().__init__(**kwargs)
