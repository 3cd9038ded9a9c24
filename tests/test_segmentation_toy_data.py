"""The embedded toy ADE20K data: ADE layout and label convention,
deterministic, generated once and atomically."""
import multiprocessing
import os

import cv2
import numpy as np
import pytest

from gcvit_mm.datasets import toy_ade
from gcvit_mm.datasets.toy_ade import (CLASSES, ToyADE20KDataset,
                                       make_toy_ade)
from gcvit_mm.utils import UserError

SMALL = dict(num_train=4, num_val=2, img_size=(64, 80), seed=3)


def files(root):
    out = {}
    for dirpath, _, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_ade_layout_and_labels(tmp_path):
    root = make_toy_ade(str(tmp_path / 'toy_ade'), **SMALL)
    for split, count in (('training', 4), ('validation', 2)):
        images = sorted(os.listdir(os.path.join(root, 'images', split)))
        labels = sorted(os.listdir(os.path.join(root, 'annotations', split)))
        assert len(images) == count
        assert [n[:-4] for n in images] == [n[:-4] for n in labels]
        assert all(n.endswith('.jpg') for n in images)
        assert all(n.endswith('.png') for n in labels)
    seen = set()
    for name in os.listdir(os.path.join(root, 'annotations', 'training')):
        label = cv2.imread(
            os.path.join(root, 'annotations', 'training', name),
            cv2.IMREAD_UNCHANGED)
        image = cv2.imread(
            os.path.join(root, 'images', 'training', name[:-4] + '.jpg'))
        assert label.dtype == np.uint8 and label.shape == (64, 80)
        assert image.shape == (64, 80, 3)
        seen |= set(np.unique(label).tolist())
    assert seen <= set(range(len(CLASSES) + 1))
    assert 0 in seen  # ADE's "unlabeled", ignored after reduce_zero_label
    assert len(seen) >= 5


def test_deterministic_and_seeded(tmp_path):
    a = files(make_toy_ade(str(tmp_path / 'a'), **SMALL))
    b = files(make_toy_ade(str(tmp_path / 'b'), **SMALL))
    c = files(make_toy_ade(str(tmp_path / 'c'), **dict(SMALL, seed=4)))
    assert a == b
    images = [k for k in a if k.endswith('.jpg')]
    assert all(a[k] != c[k] for k in images)


def test_existing_tree_is_reused_and_checked(tmp_path):
    root = str(tmp_path / 'toy_ade')
    make_toy_ade(root, **SMALL)
    marker = os.path.join(root, 'images', 'training', 'toy_00000.jpg')
    mtime = os.stat(marker).st_mtime_ns
    make_toy_ade(root, **SMALL)  # same arguments: nothing rewritten
    assert os.stat(marker).st_mtime_ns == mtime
    with pytest.raises(UserError, match='was generated with .*num_train'
                       "': 4.* but .*num_train': 5.* remove the folder"):
        make_toy_ade(root, **dict(SMALL, num_train=5))
    # a dataset that names no settings takes the set that is there
    assert make_toy_ade(root, num_train=5, any_settings=True) == root
    os.makedirs(tmp_path / 'other')
    with pytest.raises(UserError, match='not made by the toy ADE20K'):
        make_toy_ade(str(tmp_path / 'other'), **SMALL)


def _generate_after_barrier(root, barrier, queue):
    """Write the tree, wait until the other process has written its copy
    too, then race to rename it into place."""
    original = toy_ade._write_tree

    def write_then_wait(*args, **kwargs):
        original(*args, **kwargs)
        barrier.wait(timeout=60)

    toy_ade._write_tree = write_then_wait
    try:
        toy_ade.make_toy_ade(root, **SMALL)
        queue.put('ok')
    except Exception as e:  # noqa: BLE001
        queue.put(repr(e))


def test_concurrent_generation_is_atomic(tmp_path):
    """Two ranks that both find the data missing: both finish, one tree is
    kept, the loser's temporary copy is removed."""
    ctx = multiprocessing.get_context('fork')
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    root = str(tmp_path / 'toy_ade')
    procs = [
        ctx.Process(target=_generate_after_barrier,
                    args=(root, barrier, queue)) for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
    assert [proc.exitcode for proc in procs] == [0, 0]
    assert sorted([queue.get(timeout=5) for _ in procs]) == ['ok', 'ok']
    assert os.listdir(tmp_path) == ['toy_ade']
    assert files(root) == files(make_toy_ade(str(tmp_path / 'ref'), **SMALL))


def test_dataset_reduces_zero_label_like_ade(tmp_path):
    import mmseg.datasets  # noqa: F401  (registers the transforms)
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    root = str(tmp_path / 'toy_ade')
    dataset = ToyADE20KDataset(
        data_root=root,
        gen_cfg=SMALL,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', reduce_zero_label=True),
            dict(type='PackSegInputs')
        ])
    assert len(dataset) == 2
    assert dataset.metainfo['classes'] == CLASSES
    assert dataset.reduce_zero_label
    sample = dataset[0]['data_samples']
    stored = cv2.imread(
        os.path.join(root, 'annotations', 'validation', 'toy_00000.png'),
        cv2.IMREAD_UNCHANGED).astype(np.int64)
    expected = np.where(stored == 0, 255, stored - 1)
    assert np.array_equal(sample.gt_sem_seg.data[0].numpy(), expected)
