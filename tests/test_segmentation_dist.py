"""The shared tools on a segmentation config: a 2-process (gloo, CPU)
distributed training with tools/dist_train.sh, then tools/test.py on its
checkpoint, both on the toy ADE20K data."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from test_segmentation_train import GEN_CFG, REPO, tiny_config

from gcvit_mm.utils.ports import free_port


def run(cmd, env, timeout=300):
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    return output


def test_distributed_train_then_test_with_the_tools(tmp_path):
    """bash tools/dist_train.sh CONFIG 2 on CPU: both ranks generate the
    (missing) toy data at once, train with gloo, validate with IoUMetric and
    save a checkpoint that tools/test.py evaluates."""
    if not osp.isfile(osp.join(REPO, 'tools', 'dist_train.sh')):
        pytest.skip('tools/dist_train.sh not there yet')
    max_iters = 4
    config = tiny_config(tmp_path / 'tiny.py', max_iters)
    data_dir = tmp_path / 'data'  # empty: the ranks race to generate
    env = dict(os.environ, GCVIT_MM_DATA=str(data_dir), PORT=str(free_port()),
               OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    work_dir = tmp_path / 'work'
    log = run(['bash', 'tools/dist_train.sh', config, '2', '--work-dir',
               str(work_dir)], env)
    checkpoint = work_dir / f'iter_{max_iters}.pth'
    assert checkpoint.is_file(), log[-3000:]
    assert 'Distributed training: True' in log, log[-3000:]
    # the 4 validation images are split over the 2 ranks
    assert re.search(r'Iter\(val\) \[2/2\]', log), log[-3000:]
    assert re.search(r'mIoU: \d+\.\d+', log), log[-3000:]
    # one dataset tree, complete, without leftovers from the losing rank
    assert sorted(os.listdir(data_dir)) == ['toy_ade']
    images = data_dir / 'toy_ade' / 'images'
    assert len(os.listdir(images / 'training')) == GEN_CFG['num_train']
    assert len(os.listdir(images / 'validation')) == GEN_CFG['num_val']

    out = run([sys.executable, 'tools/test.py', config, str(checkpoint),
               '--work-dir', str(tmp_path / 'test')], env)
    found = re.findall(r'mIoU: (\d+\.\d+)', out)
    assert found, out[-3000:]
    assert 0. <= float(found[-1]) <= 100.
