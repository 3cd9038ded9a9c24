"""mmengine resumes its own checkpoints with torch's safe loading on."""
import pickle
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

import gcvit_mm  # noqa: F401  (registers the allow-list, as configs do)
from gcvit_mm.utils.safe_loading import history_buffer_method

TRAIN_SCRIPT = textwrap.dedent('''
    import sys
    import torch, torch.nn as nn
    import gcvit_mm  # what custom_imports does in our configs
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from torch.utils.data import Dataset

    class Data(Dataset):
        def __len__(self):
            return 8
        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return dict(x=torch.rand(4, generator=g), y=torch.rand(1, generator=g))

    class Model(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 1)
        def forward(self, x, y, mode='loss'):
            return dict(loss=((self.fc(x) - y)**2).mean())

    work_dir, max_epochs, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == '1'
    runner = Runner(
        model=Model(), work_dir=work_dir, resume=resume, randomness=dict(seed=0),
        train_dataloader=dict(dataset=Data(), batch_size=2,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1)))
    runner.train()
    print('RESUMED_ITER', runner.iter)
''')


def run(work_dir, epochs, resume):
    return subprocess.run(
        [sys.executable, '-c', TRAIN_SCRIPT, str(work_dir), str(epochs),
         '1' if resume else '0'], capture_output=True, text=True)


def test_resume_restores_iteration_and_optimizer_state(tmp_path):
    first = run(tmp_path, 1, resume=False)
    assert first.returncode == 0, first.stderr[-2000:]
    ckpt_path = tmp_path / 'epoch_1.pth'
    with zipfile.ZipFile(ckpt_path) as archive:  # what mmengine writes
        pickled = archive.read(next(n for n in archive.namelist()
                                    if n.endswith('data.pkl')))
    assert b'getattr' in pickled and b'HistoryBuffer' in pickled
    saved = torch.load(ckpt_path)  # weights_only=True by default
    assert saved['meta']['iter'] == 4
    # Resume: 4 more iterations, starting where the checkpoint stopped.
    second = run(tmp_path, 2, resume=True)
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-2000:]
    assert 'resumed epoch: 1, iter: 4' in log
    assert 'RESUMED_ITER 8' in log
    final = torch.load(tmp_path / 'epoch_2.pth')
    step = final['optimizer']['state'][0]['step']
    assert int(step) == 8  # AdamW counted on from the saved state


class _Getattr:
    """Pickles as builtins.getattr(owner, name): the first step of a gadget
    chain from an allowed object to os.system."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return (getattr, (self.owner, self.name))


@pytest.mark.parametrize('owner, name', [(HistoryBuffer, '__init__'),
                                         (np.ndarray, 'tofile'),
                                         (HistoryBuffer, '__class__')])
def test_getattr_is_not_a_free_pass(tmp_path, owner, name):
    path = tmp_path / 'evil.pth'
    torch.save({'x': _Getattr(owner, name)}, path)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path)
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        history_buffer_method(torch, 'load')
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_method(HistoryBuffer, '__init__')
    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean
