"""Tiny COCO- and ADE20K-format sets with real image sizes, for training the
real configs (tests/test_real_configs.py) in their dataset layouts.

Deterministic (numpy + cv2 only, fixed seeds). Layouts, as the real configs
expect them, so that only ``data_root`` (and the COCO evaluator's
``ann_file``) need overriding::

    <root>/coco/annotations/instances_{train,val}2017.json
    <root>/coco/{train,val}2017/<12-digit id>.jpg
    <root>/ade/images/{training,validation}/ADE_{train,val}_<8 digits>.jpg
    <root>/ade/annotations/{training,validation}/ADE_..._<8 digits>.png
"""
import json
import os
import os.path as osp

import cv2
import numpy as np

# The 80 COCO categories: names as mmdet's CocoDataset.METAINFO['classes']
# (which looks category ids up by these names), and their real ids, which
# skip 12, 26, 29, 30, 45, 66, 68, 69, 71 and 83 (1..90).
COCO_NAMES = (
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train',
    'truck', 'boat', 'traffic light', 'fire hydrant', 'stop sign',
    'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse', 'sheep', 'cow',
    'elephant', 'bear', 'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag',
    'tie', 'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'wine glass', 'cup', 'fork', 'knife', 'spoon',
    'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli', 'carrot',
    'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch', 'potted plant',
    'bed', 'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
    'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
    'refrigerator', 'book', 'clock', 'vase', 'scissors', 'teddy bear',
    'hair drier', 'toothbrush')
COCO_IDS = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42,
    43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61,
    62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90)
# A few categories the images use (ids, not indices: the gaps must be
# mapped by the dataset): person, car, dog, chair, tv, toothbrush.
COCO_USED_IDS = (1, 3, 18, 62, 72, 90)

# (width, height), all between 480 and 1000 px, so the pipelines' resizes
# (short side 480-800, at most 1333) really rescale. Training: 3:2 and 4:3,
# both landscape, so mmdet's AspectRatioBatchSampler makes its usual batch
# of one orientation (a portrait + landscape pair would only come out as
# its leftover, padded to a 1216x1216 square: 1.5x the pixels). Validation:
# portrait 3:4.
COCO_TRAIN_SIZES = ((1000, 667), (720, 540))
COCO_VAL_SIZES = ((600, 800), )

# (width, height) as ADE20K's: 683x512 landscape and 512x910 portrait for
# training; the validation image is not short-side 512, so the test
# pipeline's Resize(2048, 512) changes it and slide inference must resize
# its prediction back to 600x800.
ADE_TRAIN_SIZES = ((683, 512), (512, 910))
ADE_VAL_SIZES = ((600, 800), )
ADE_NUM_CLASSES = 150


def _background(rng, w, h):
    """Two-tone noisy background, uint8 BGR."""
    base = rng.integers(40, 200, size=(2, 3))
    img = np.empty((h, w, 3), np.float32)
    img[:] = base[0]
    split = int(rng.integers(h // 3, 2 * h // 3))
    img[split:] = base[1]
    img += rng.normal(0, 12, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _polygon(rng, cx, cy, radius, kind):
    """A convex polygon: a 24-gon ellipse, a rotated rectangle or a
    triangle, as an (N, 2) float array."""
    angle = rng.uniform(0, np.pi)
    if kind == 0:
        t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        pts = np.stack([radius * np.cos(t),
                        radius * rng.uniform(0.5, 1.0) * np.sin(t)], 1)
    elif kind == 1:
        a, b = radius, radius * rng.uniform(0.4, 1.0)
        pts = np.array([[-a, -b], [a, -b], [a, b], [-a, b]])
    else:
        t = np.deg2rad([-90, 30, 150])
        pts = np.stack([radius * np.cos(t), radius * np.sin(t)], 1)
    rot = np.array([[np.cos(angle), -np.sin(angle)],
                    [np.sin(angle), np.cos(angle)]])
    return pts @ rot.T + [cx, cy]


def _coco_image(rng, w, h, image_id, first_ann_id, num_instances):
    """Image with ``num_instances`` non-overlapping polygons and their COCO
    annotations (polygon masks, area of the drawn mask)."""
    img = _background(rng, w, h)
    taken = np.zeros((h, w), bool)
    anns = []
    tries = 0
    while len(anns) < num_instances:
        tries += 1
        assert tries < 1000, 'cannot place the instances'
        radius = rng.uniform(0.06, 0.18) * min(w, h)
        cx = rng.uniform(radius, w - radius)
        cy = rng.uniform(radius, h - radius)
        pts = _polygon(rng, cx, cy, radius, int(rng.integers(3)))
        pts = np.clip(pts, 0, [w - 1, h - 1])
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
        mask = mask.astype(bool)
        if (mask & taken).any():
            continue
        taken |= mask
        color = rng.integers(0, 256, size=3)
        img[mask] = color
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        anns.append(dict(
            id=first_ann_id + len(anns), image_id=image_id,
            category_id=int(rng.choice(COCO_USED_IDS)),
            segmentation=[[round(float(v), 2) for v in pts.reshape(-1)]],
            area=float(mask.sum()),
            bbox=[round(float(v), 2) for v in (x0, y0, x1 - x0, y1 - y0)],
            iscrowd=0))
    return img, anns


def make_coco(root, seed=0):
    """Write the COCO-format set under ``root`` (``data/coco`` layout);
    returns ``root``."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [dict(id=i, name=n, supercategory='none')
                  for i, n in zip(COCO_IDS, COCO_NAMES)]
    image_id, ann_id = 1, 1
    for split, sizes in (('train2017', COCO_TRAIN_SIZES),
                         ('val2017', COCO_VAL_SIZES)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for w, h in sizes:
            name = f'{image_id:012d}.jpg'
            img, anns = _coco_image(rng, w, h, image_id, ann_id,
                                    num_instances=int(rng.integers(4, 7)))
            cv2.imwrite(osp.join(root, split, name), img)
            images.append(dict(id=image_id, file_name=name, width=w,
                               height=h))
            annotations += anns
            image_id += 1
            ann_id += len(anns)
        with open(osp.join(root, 'annotations',
                           f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations,
                           categories=categories), f)
    return root


def _ade_pair(rng, w, h):
    """Image and label map (values 0..150, 0 = 'other', ignored after
    reduce_zero_label): random rectangles and ellipses of random classes
    over a background class, with a band of 0."""
    label = np.full((h, w), rng.integers(1, ADE_NUM_CLASSES + 1), np.uint8)
    for _ in range(int(rng.integers(6, 10))):
        cls = int(rng.integers(1, ADE_NUM_CLASSES + 1))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        ax, ay = int(rng.integers(w // 10, w // 3)), int(
            rng.integers(h // 10, h // 3))
        if rng.integers(2):
            cv2.ellipse(label, (cx, cy), (ax, ay), 0, 0, 360, cls, -1)
        else:
            cv2.rectangle(label, (cx - ax, cy - ay), (cx + ax, cy + ay),
                          cls, -1)
    label[:, :w // 12] = 0  # unlabelled ("other") pixels
    # Colour by class plus noise, so the classes are visible in the image.
    palette = np.random.default_rng(1).integers(
        0, 256, size=(ADE_NUM_CLASSES + 1, 3))
    img = palette[label].astype(np.float32)
    img += rng.normal(0, 15, size=img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), label


def make_ade(root, seed=0):
    """Write the ADE20K-format set under ``root``
    (``data/ade/ADEChallengeData2016`` layout); returns ``root``."""
    rng = np.random.default_rng(seed)
    for split, prefix, sizes in (('training', 'ADE_train', ADE_TRAIN_SIZES),
                                 ('validation', 'ADE_val', ADE_VAL_SIZES)):
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        os.makedirs(osp.join(root, 'annotations', split), exist_ok=True)
        for i, (w, h) in enumerate(sizes, 1):
            img, label = _ade_pair(rng, w, h)
            cv2.imwrite(osp.join(root, 'images', split,
                                 f'{prefix}_{i:08d}.jpg'), img)
            cv2.imwrite(osp.join(root, 'annotations', split,
                                 f'{prefix}_{i:08d}.png'), label)
    return root
