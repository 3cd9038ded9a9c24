"""Safe loading keeps its promises on every supported torch: mmengine's own
checkpoints (numpy values, HistoryBuffer) resume, from numpy 1 or numpy 2;
a checkpoint never runs code, whatever TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
says; and the allow-list applies to gcvit_mm's loads only."""
import io
import os
import pickle
import subprocess
import sys
import textwrap
import types
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

import gcvit_mm  # noqa: F401  (routes mmengine's loading, as configs do)
from gcvit_mm.checkpoint import CheckpointError, load_checkpoint_file
from gcvit_mm.checkpoint.safe_unpickler import (
    TORCH_SCOPES_ALLOW_LIST, history_buffer_method,
    load_with_restricted_unpickler, load_with_torch_unpickler)
from gcvit_mm.utils import check_named_model_loaders

pytestmark = pytest.mark.compat

# Both ways of applying the policy where this torch has them: the
# restricted unpickler works on every torch.
LOADERS = [load_with_restricted_unpickler] + (
    [load_with_torch_unpickler] if TORCH_SCOPES_ALLOW_LIST else [])

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


@pytest.fixture(scope='module')
def first_run(tmp_path_factory):
    """A work dir with mmengine's epoch_1.pth after 4 iterations."""
    work_dir = tmp_path_factory.mktemp('safe_resume')
    result = run(work_dir, 1, resume=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return work_dir


def _pickle_of(path):
    with zipfile.ZipFile(path) as archive:  # what mmengine writes
        name = next(n for n in archive.namelist() if n.endswith('data.pkl'))
        return name, archive.read(name)


def test_resume_restores_iteration_and_optimizer_state(first_run):
    name, pickled = _pickle_of(first_run / 'epoch_1.pth')
    assert b'getattr' in pickled and b'HistoryBuffer' in pickled
    assert b'multiarray' in pickled  # numpy values in the log history
    saved = load_checkpoint_file(str(first_run / 'epoch_1.pth'))
    assert saved['meta']['iter'] == 4
    # Resume: 4 more iterations, starting where the checkpoint stopped.
    second = run(first_run, 2, resume=True)
    log = second.stdout + second.stderr
    assert second.returncode == 0, log[-2000:]
    assert 'resumed epoch: 1, iter: 4' in log
    assert 'RESUMED_ITER 8' in log
    final = load_checkpoint_file(str(first_run / 'epoch_2.pth'))
    step = final['optimizer']['state'][0]['step']
    assert int(step) == 8  # AdamW counted on from the saved state


def test_other_libraries_torch_load_is_not_widened(first_run):
    """After ``import gcvit_mm`` a plain torch.load(weights_only=True) still
    refuses mmengine's checkpoint (its numpy and HistoryBuffer globals), as
    torch alone does; torch >= 2.6 refuses it by default as well."""
    path = first_run / 'epoch_1.pth'
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    if torch.__version__ >= (2, 6):
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)
        allowed = [g[0] if isinstance(g, tuple) else g
                   for g in torch.serialization.get_safe_globals()]
        assert HistoryBuffer not in allowed and np.ndarray not in allowed


def _rename_numpy_module(src, dst, old, new):
    """Copy mmengine's checkpoint ``src`` to ``dst`` with numpy's module
    named as the other numpy major version pickles it."""
    name, pickled = _pickle_of(src)
    assert old in pickled
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(
            dst, 'w', zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item, data.replace(old, new)
                          if item.filename == name else data)


@pytest.mark.parametrize('numpy_module', ['numpy.core.multiarray',
                                          'numpy._core.multiarray'])
def test_checkpoint_from_either_numpy_major_loads_and_resumes(
        first_run, tmp_path, numpy_module):
    """numpy 1 pickles numpy.core.multiarray, numpy 2 numpy._core: a
    checkpoint written with either loads under this numpy, through
    mmengine's loader (what --resume and load_from use), with the same
    log history values."""
    src = first_run / 'epoch_1.pth'
    this = (b'numpy._core.multiarray' if b'numpy._core.multiarray' in
            _pickle_of(src)[1] else b'numpy.core.multiarray')
    moved = tmp_path / 'epoch_1.pth'
    _rename_numpy_module(src, moved, this, numpy_module.encode())
    assert numpy_module.encode() + b'\n' in _pickle_of(moved)[1]
    original = load_checkpoint_file(str(src))
    loaded = CheckpointLoader.load_checkpoint(str(moved))
    hub, hub0 = (c['message_hub']['log_scalars'] for c in (loaded, original))
    assert hub.keys() == hub0.keys() and len(hub) > 0
    for key in hub:
        assert isinstance(hub[key], HistoryBuffer)
        np.testing.assert_array_equal(hub[key].data[0], hub0[key].data[0])
        assert hub[key].mean() == hub0[key].mean()


@pytest.mark.parametrize('loader', LOADERS)
@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_everything_torch_save_writes_for_a_training_run_loads(
        tmp_path, loader, zip_format):
    """Tensors, parameters, state dicts (with their _metadata), optimizer
    state, and the Python and numpy values of mmengine's and mmdet's
    checkpoints (Counter, set, complex, bytes), on each loader."""
    import collections
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.rand(4, 3)).sum().backward()
    optimizer.step()
    saved = {'state_dict': model.state_dict(),
             'optimizer': optimizer.state_dict(),
             'param': torch.nn.Parameter(torch.arange(3.)),
             'meta': {'counts': collections.Counter(a=2, b=1), 'ids': {1, 2},
                      'z': 1 + 2j, 'raw': b'\x00\xff', 'f32': np.float32(1.5),
                      'i64': np.int64(7), 'array': np.arange(6).reshape(2, 3),
                      'dtype': np.dtype('float16'), 'half': torch.float16}}
    path = tmp_path / 'run.pth'
    torch.save(saved, path, _use_new_zipfile_serialization=zip_format)
    loaded = loader(str(path))
    assert loaded['state_dict']._metadata == saved['state_dict']._metadata
    for key, value in saved['state_dict'].items():
        assert torch.equal(loaded['state_dict'][key], value)
    state, state0 = (o['optimizer']['state'][0] for o in (loaded, saved))
    assert int(state['step']) == 1 and torch.equal(state['exp_avg'],
                                                   state0['exp_avg'])
    assert loaded['optimizer']['param_groups'] == saved['optimizer'][
        'param_groups']
    assert type(loaded['param']) is torch.nn.Parameter
    assert torch.equal(loaded['param'], saved['param'])
    meta = loaded['meta']
    np.testing.assert_array_equal(meta.pop('array'), saved['meta']['array'])
    assert meta == {k: v for k, v in saved['meta'].items() if k != 'array'}
    assert type(meta['f32']) is np.float32 and type(meta['counts']) is \
        collections.Counter


class _Getattr:
    """Pickles as builtins.getattr(owner, name): the first step of a gadget
    chain from an allowed object to os.system."""

    def __init__(self, owner, name):
        self.owner, self.name = owner, name

    def __reduce__(self):
        return (getattr, (self.owner, self.name))


@pytest.mark.parametrize('loader', LOADERS)
@pytest.mark.parametrize('owner, name', [(HistoryBuffer, '__init__'),
                                         (np.ndarray, 'tofile'),
                                         (HistoryBuffer, '__class__')])
def test_getattr_is_not_a_free_pass(tmp_path, owner, name, loader):
    path = tmp_path / 'evil.pth'
    torch.save({'x': _Getattr(owner, name)}, path)
    with pytest.raises(pickle.UnpicklingError):
        loader(str(path))
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        history_buffer_method(torch, 'load')
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_method(HistoryBuffer, '__init__')
    assert history_buffer_method(HistoryBuffer, 'mean') is HistoryBuffer.mean


class _System:
    """Unpickled without safe loading, it creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


@pytest.mark.parametrize('loader', LOADERS)
@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_payload_never_runs_whatever_the_environment_says(
        tmp_path, monkeypatch, loader, zip_format):
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    marker = tmp_path / 'MARKER'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': torch.zeros(2)}, 'meta': _System(marker)},
               path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(pickle.UnpicklingError,
                       match=r'GLOBAL posix\.system'):
        loader(str(path))
    assert not marker.exists()
    with pytest.raises(CheckpointError, match=r'^refusing to load .*evil\.pth'
                       r': it holds a Python object that safe loading does '
                       r'not allow \(posix\.system\)'):
        load_checkpoint_file(str(path))
    assert not marker.exists()


def _build_on(owner_module, owner_name, attribute):
    """A pickle (protocol 2) that sets ``owner.attribute = 1`` through BUILD
    with a slot state, ``owner`` a class or function found by GLOBAL."""
    return (b'\x80\x02c' + owner_module + b'\n' + owner_name + b'\n'
            + b'N}q\x00X' + len(attribute).to_bytes(4, 'little') + attribute
            + b'K\x01s\x86b.')


@pytest.mark.parametrize('loader', LOADERS)
@pytest.mark.parametrize('owner', [
    (b'mmengine.logging.history_buffer', b'HistoryBuffer'),
    (b'torch._utils', b'_rebuild_tensor_v2'),
])
def test_build_cannot_set_attributes_of_an_allowed_class_or_function(
        tmp_path, loader, owner):
    path = tmp_path / 'build.pth'
    buffer = io.BytesIO()
    torch.save({'w': torch.zeros(1)}, buffer)
    with zipfile.ZipFile(buffer) as zin, zipfile.ZipFile(
            path, 'w', zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith('data.pkl'):
                data = _build_on(*owner, b'max')
            zout.writestr(item, data)
    with pytest.raises(pickle.UnpicklingError):
        loader(str(path))
    target = HistoryBuffer if owner[1] == b'HistoryBuffer' else \
        torch._utils._rebuild_tensor_v2
    assert getattr(target, 'max', None) != 1
    assert HistoryBuffer.max is HistoryBuffer.__dict__['max']


def test_named_model_loaders_are_checked_to_use_the_module_global():
    """``import gcvit_mm`` replaces mmengine's module global load_from_http;
    that routes the named-model schemes only while their loaders look it up
    there, as mmengine 0.10.7's do (the import above passed the check)."""
    fake = types.ModuleType('fake_checkpoint')
    exec(textwrap.dedent('''
        def load_from_http(url):
            return url
        def load_from_torchvision(name):
            return load_from_http('https://x/' + name)
        def load_from_mmcls(name):
            import urllib.request
            return urllib.request.urlopen('https://x/' + name)
    '''), fake.__dict__)
    check_named_model_loaders(fake, ['load_from_torchvision'])
    with pytest.raises(ImportError) as err:
        check_named_model_loaders(fake, ['load_from_torchvision',
                                         'load_from_mmcls'])
    assert str(err.value) == (
        'gcvit_mm cannot make fake_checkpoint.load_from_mmcls load safely '
        f'with mmengine {__import__("mmengine").__version__}: it no longer '
        "downloads through the module's load_from_http; install the "
        'mmengine gcvit_mm supports: pip install mmengine==0.10.7')
