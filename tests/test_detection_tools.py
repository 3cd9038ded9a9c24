"""tools/dist_train.sh on CPU (2 processes, gloo), tools/test.py, the
one-line errors for bad input, and tools/get_flops.py."""
import os
import os.path as osp
import re
import zipfile

import pytest
import torch

from detection_utils import REPO, run_tool, write_small_config
from gcvit_mm.utils.ports import free_port


@pytest.fixture(scope='module')
def trained(tmp_path_factory, tiny_toy_data):
    """Cascade (SyncBN heads) trained by tools/dist_train.sh: 2 processes,
    4 images each... 2 iterations, one checkpoint."""
    tmp = tmp_path_factory.mktemp('dist')
    cfg = write_small_config(
        tmp / 'cascade.py', 'cascade',
        train_cfg='dict(max_epochs=1, val_interval=100)',
        default_hooks="dict(checkpoint=dict(interval=1))")
    work = tmp / 'work'
    env_port = dict(PORT=str(free_port()))
    os.environ.update(env_port)
    try:
        result = run_tool([
            'dist_train.sh', cfg, 2, '--work-dir', work, '--cfg-options',
            'train_dataloader.dataset.indices=8'
        ], tiny_toy_data)
    finally:
        os.environ.pop('PORT')
    return cfg, work, result


def test_dist_train_two_cpu_processes_write_one_checkpoint(trained):
    cfg, work, result = trained
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert sorted(p.name for p in work.glob('*.pth')) == ['epoch_1.pth']
    assert re.search(r'Distributed training: True', log), log[-3000:]
    assert re.search(r'GPU number: 2', log)  # mmengine's name: world size
    if not torch.cuda.is_available():
        assert 'distributed backend set to gloo' in log
        assert 'SyncBN layer config(s) reverted to BN' in log
    # 8 images / (2 processes x 2 per batch) = 2 iterations
    assert re.search(r'Epoch\(train\) \[1\]\[2/2\]', log), log[-3000:]
    from gcvit_mm.checkpoint import load_checkpoint_file
    ckpt = load_checkpoint_file(str(work / 'epoch_1.pth'))
    assert ckpt['meta']['iter'] == 2


def test_test_tool_reports_coco_map_and_dumps_predictions(trained, tiny_toy_data,
                                                          tmp_path):
    cfg, work, _ = trained
    out = tmp_path / 'preds.pkl'
    result = run_tool([
        'test.py', cfg, work / 'epoch_1.pth', '--work-dir', tmp_path / 'w',
        '--out', out
    ], tiny_toy_data)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert re.search(r'coco/bbox_mAP: [0-9.]+', result.stdout)
    assert re.search(r'coco/segm_mAP: [0-9.]+', result.stdout)
    assert out.stat().st_size > 0


def assert_one_line_error(result, *needles):
    err = result.stderr.strip()
    assert result.returncode == 1, (result.stdout + err)[-3000:]
    assert 'Traceback' not in err, err[-3000:]
    last = err.splitlines()[-1]
    assert last.startswith('error: '), err[-3000:]
    for needle in needles:
        assert needle in last, last
    return last


def test_missing_coco_names_the_config_keys(tmp_path, tiny_toy_data):
    cfg = osp.join(REPO, 'configs/mask_rcnn/gcvit_t_coco.py')
    missing = str(tmp_path / 'no_coco') + '/'
    result = run_tool([
        'train.py', cfg, '--work-dir', tmp_path, '--cfg-options',
        f'train_dataloader.dataset.data_root={missing}'
    ], tiny_toy_data)
    assert_one_line_error(result, 'dataset path not found', missing,
                          'train_dataloader.dataset.data_root')
    result = run_tool(['test.py', cfg, tmp_path / 'none.pth', '--cfg-options',
                       f'test_dataloader.dataset.data_root={missing}'],
                      tiny_toy_data)
    assert_one_line_error(result, 'test_dataloader.dataset.data_root')


def test_unknown_backbone_arch(tmp_path, tiny_toy_data):
    cfg = write_small_config(tmp_path / 'bad_arch.py', 'mask_rcnn')
    result = run_tool([
        'train.py', cfg, '--work-dir', tmp_path, '--cfg-options',
        'model.backbone.arch=huge'
    ], tiny_toy_data)
    assert_one_line_error(result, "Unknown GCViT arch 'huge'", 'xxtiny')


def _corrupt_checkpoints(tmp_path):
    good = tmp_path / 'good.pth'
    torch.save({'state_dict': {'w': torch.zeros(1000)}}, good)
    data = good.read_bytes()
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes(data[:len(data) // 2])
    garbage = tmp_path / 'garbage.pth'
    garbage.write_bytes(b'<html>404 Not Found</html>' * 10)
    assert zipfile.is_zipfile(good) and not zipfile.is_zipfile(truncated)
    return truncated, garbage


def test_corrupt_checkpoint_resume_test_and_pretrained(tmp_path, tiny_toy_data):
    truncated, garbage = _corrupt_checkpoints(tmp_path)
    cfg = write_small_config(tmp_path / 'c.py', 'mask_rcnn')
    result = run_tool(['train.py', cfg, '--work-dir', tmp_path, '--resume',
                       truncated], tiny_toy_data)
    assert_one_line_error(result, 'resume checkpoint', str(truncated))
    result = run_tool(['test.py', cfg, garbage, '--work-dir', tmp_path],
                      tiny_toy_data)
    assert_one_line_error(result, 'checkpoint', str(garbage), 'corrupt')
    cfg = write_small_config(
        tmp_path / 'p.py', 'mask_rcnn',
        init_cfg=f"dict(_delete_=True, type='Pretrained', "
        f"checkpoint={str(truncated)!r})")
    result = run_tool(['train.py', cfg, '--work-dir', tmp_path], tiny_toy_data)
    assert_one_line_error(result, 'pretrained checkpoint', str(truncated))


@pytest.mark.compat  # its JIT trace differs on torch 2.0/2.1
def test_get_flops_counts_attention_matmuls_only_with_them(tiny_toy_data):
    cfg = osp.join(REPO, 'configs/mask_rcnn/gcvit_xxt_shapes.py')
    result = run_tool(['get_flops.py', cfg, '--shape', 128, 160], tiny_toy_data)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert 'Input shape: (1, 3, 128, 160)' in out
    params = float(re.search(r'Params: ([0-9.]+) M', out).group(1))
    with_attn = float(
        re.search(r'with attention matmuls\):\s+([0-9.]+) G', out).group(1))
    without = float(
        re.search(r'without attention matmuls.*?:\s+([0-9.]+) G',
                  out).group(1))
    attention = float(
        re.search(r'Attention matmuls.*?:\s+([0-9.]+) G', out).group(1))
    assert 10 < params < 30
    assert abs(with_attn - without - attention) < 0.02
    # The attention is counted on maps padded to whole windows, as the
    # paper's code computes it (border='pad'): per block and window,
    # q @ k^T and attn @ v are N*N*C multiply-adds each. xxtiny, windows
    # (8, 8, 8, 4); maps 32x40, 16x20, 8x10, 4x5 pad to 20, 6, 2, 2 windows.
    expected = sum(depth * windows * 2 * n * n * c for depth, windows, n, c in
                   [(2, 20, 64, 64), (2, 6, 64, 128), (6, 2, 64, 256),
                    (2, 2, 16, 512)]) / 1e9
    assert attention == pytest.approx(expected, abs=0.0005)
