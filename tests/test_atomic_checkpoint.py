"""A run killed (SIGKILL, in a real process) before, during or after a
checkpoint write resumes from its last complete checkpoint, with the model
and optimizer state the uninterrupted run had there; AtomicCheckpointHook is
what every config uses."""
import glob
import itertools
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from mmengine.config import Config

import gcvit_mm  # noqa: F401  (safe loading of mmengine checkpoints)
from gcvit_mm.engine.checkpoint_files import checkpoint_problem

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
HOOK = 'AtomicCheckpointHook'
EPOCHS = 3  # 4 iterations each: checkpoints at iterations 4, 8, 12

# argv: work_dir hook max_keep_ckpts resume crash start_state_file [best]
# crash 'NAME:WHEN:N': the N-th time a file whose name contains NAME is
#   opened for writing, WHEN='open' dies before writing a byte, 'half' writes
#   half of the bytes then dies; WHEN='remove' dies when NAME is removed.
TRAIN_SCRIPT = textwrap.dedent('''
    import builtins, os, signal, sys
    import torch, torch.nn as nn
    import gcvit_mm  # what custom_imports does in our configs
    from mmengine.evaluator import BaseMetric
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel
    from mmengine.runner import Runner
    from torch.utils.data import Dataset

    work_dir, hook, max_keep, resume, crash, start_file = sys.argv[1:7]
    best = len(sys.argv) > 7

    def die():  # kill -9: no flush, no atexit, no finally
        os.kill(os.getpid(), signal.SIGKILL)

    if crash:
        name, when, nth = crash.split(':')
        seen = [0]
        def hit(path):
            if name not in os.path.basename(str(path)):
                return False
            seen[0] += 1
            return seen[0] == int(nth)
        if when == 'remove':
            real_remove = os.remove
            def remove(path, *a, **k):
                if os.path.basename(str(path)) == name and hit(path):
                    die()
                return real_remove(path, *a, **k)
            os.remove = remove
        else:
            real_open = builtins.open
            class HalfThenDie:
                def __init__(self, f):
                    self.f = f
                def write(self, data):
                    self.f.write(data[:len(data) // 2])
                    self.f.flush()
                    die()
                def __getattr__(self, attr):
                    return getattr(self.f, attr)
                def __enter__(self):
                    return self
                def __exit__(self, *exc):
                    return self.f.__exit__(*exc)
            def open_(path, mode='r', *a, **k):
                if 'w' in mode and hit(path):
                    if when == 'open':
                        die()
                    return HalfThenDie(real_open(path, mode, *a, **k))
                return real_open(path, mode, *a, **k)
            builtins.open = open_

    class Data(Dataset):
        def __len__(self):
            return 8
        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            return dict(x=torch.rand(4, generator=g),
                        y=torch.rand(1, generator=g))

    class Model(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 1)
        def forward(self, x, y, mode='loss'):
            if mode == 'loss':
                return dict(loss=((self.fc(x) - y)**2).mean())
            return [dict()] * len(x)

    class Score(BaseMetric):  # better at every validation: a new best
        calls = 0
        def process(self, data_batch, data_samples):
            self.results.append(0)
        def compute_metrics(self, results):
            Score.calls += 1
            return dict(score=float(Score.calls))

    class RecordStart(Hook):  # the state training continues from
        def before_train(self, runner):
            torch.save(dict(iter=runner.iter, epoch=runner.epoch,
                            optimizer=runner.optim_wrapper.state_dict(),
                            model=runner.model.state_dict()), start_file)

    loader = dict(dataset=Data(), batch_size=2,
                  sampler=dict(type='DefaultSampler', shuffle=True),
                  collate_fn=dict(type='default_collate'))
    torch.manual_seed(0)  # Model() is built before the Runner seeds
    runner = Runner(
        model=Model(), work_dir=work_dir, resume=resume == '1',
        randomness=dict(seed=0), train_dataloader=loader,
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2)),
        train_cfg=dict(by_epoch=True, max_epochs=%d),
        val_dataloader=loader if best else None,
        val_evaluator=[Score()] if best else None,
        val_cfg=dict() if best else None,
        default_hooks=dict(checkpoint=dict(
            type=hook, interval=1, max_keep_ckpts=int(max_keep),
            save_best='score' if best else None, rule='greater')),
        custom_hooks=[RecordStart()])
    runner.train()
    print('FINAL_ITER', runner.iter)
''' % EPOCHS)


# Each run is a process of its own (a kill is a real process death), forked
# from one server that imported torch/mmengine/gcvit_mm once: a fresh
# interpreter per run would spend ~3 s of 2 busy cores on imports alone. The
# server never computes, so forking it is safe (no thread pools yet).
FORK_SERVER = textwrap.dedent('''
    import json, os, sys, traceback
    # what every run imports (torch._dynamo: the optimizer; matplotlib: the
    # visualizer), once
    import matplotlib.pyplot, mmcv, torch._dynamo  # noqa
    import mmengine.evaluator, mmengine.runner, gcvit_mm  # noqa
    code = sys.argv[1]
    for line in sys.stdin:
        argv, log_file = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the run: stdout and stderr to log_file
            fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.argv = ['train'] + argv
            status = 0
            try:
                exec(compile(code, 'train', 'exec'), {'__name__': '__main__'})
            except BaseException:
                traceback.print_exc()
                status = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
        _, status = os.waitpid(pid, 0)
        # os.waitstatus_to_exitcode is Python 3.9's
        print(os.WEXITSTATUS(status) if os.WIFEXITED(status) else
              -os.WTERMSIG(status), flush=True)
''')


@pytest.fixture(scope='module')
def fork_server():
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    server = subprocess.Popen(
        [sys.executable, '-c', FORK_SERVER, TRAIN_SCRIPT], env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    yield server
    server.stdin.close()
    server.wait(timeout=60)


class Run:
    """A finished (or killed) run: its exit code (-9: SIGKILL), its output
    and the state file RecordStart wrote."""

    def __init__(self, returncode, log, start):
        self.returncode, self.log, self.start = returncode, log, start


@pytest.fixture(scope='module')
def train(fork_server):
    runs = itertools.count()

    def run(work_dir, *, max_keep=1, resume=False, crash='', best=False):
        start = f'{work_dir}.pt'
        argv = [str(work_dir), HOOK, str(max_keep), '1' if resume else '0',
                crash, start] + (['best'] if best else [])
        log_file = f'{work_dir}.{next(runs)}.out'
        fork_server.stdin.write(json.dumps([argv, log_file]) + '\n')
        fork_server.stdin.flush()
        returncode = int(fork_server.stdout.readline())
        with open(log_file) as f:
            return Run(returncode, f.read(), start)

    return run


def killed(run):
    assert run.returncode == -9, (run.returncode, run.log[-3000:])


def finished(run):
    assert run.returncode == 0, run.log[-3000:]
    assert f'FINAL_ITER {4 * EPOCHS}' in run.log
    return run.log


def load(path):
    from gcvit_mm.checkpoint import load_checkpoint_file
    return load_checkpoint_file(str(path))


def assert_same_state(start_file, checkpoint):
    """The state a run starts training from equals a checkpoint's: the
    iteration, every optimizer tensor and hyper-parameter, every weight."""
    start, saved = load(start_file), load(checkpoint)
    assert start['iter'] == saved['meta']['iter']
    assert start['optimizer']['param_groups'] == \
        saved['optimizer']['param_groups']
    assert start['optimizer']['state'].keys() == \
        saved['optimizer']['state'].keys()
    for pid, state in saved['optimizer']['state'].items():
        assert state.keys() == start['optimizer']['state'][pid].keys()
        for key, value in state.items():
            assert torch.equal(torch.as_tensor(start['optimizer']['state'][
                pid][key]), torch.as_tensor(value)), (pid, key)
    assert start['model'].keys() == saved['state_dict'].keys()
    for key, value in saved['state_dict'].items():
        assert torch.equal(start['model'][key], value), key


def assert_same_weights(checkpoint, other):
    a, b = load(checkpoint), load(other)
    assert a['meta']['iter'] == b['meta']['iter']
    for key, value in a['state_dict'].items():
        assert torch.equal(b['state_dict'][key], value), key


def pointer_target(work_dir):
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def checkpoint_files(work_dir):
    """Everything but the runner's timestamped log folders and config
    dumps (``20240101_120000.py``)."""
    return sorted(n for n in os.listdir(work_dir)
                  if not osp.isdir(osp.join(work_dir, n))
                  and not n.endswith('.py'))


def warnings_in(log):
    return [line.split(' - WARNING - ', 1)[1] for line in log.splitlines()
            if ' - WARNING - ' in line and 'Auto-resume' in line]


@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory, train):
    """A run that was never killed, keeping every checkpoint."""
    work = tmp_path_factory.mktemp('uninterrupted') / 'work'
    finished(train(work, max_keep=-1))
    return work


# (crash, iteration of the last complete checkpoint when it happened)
CRASHES = {
    # killed as epoch_2.pth is opened: mmengine has deleted epoch_1.pth
    'before_write': ('epoch_2.pth:open:1', 4),
    # half of epoch_2.pth on disk
    'during_write': ('epoch_2.pth:half:1', 4),
    # epoch_2.pth complete, last_checkpoint still names epoch_1.pth
    'after_write': ('last_checkpoint:open:2', 4),
    # epoch_2.pth and last_checkpoint in place, epoch_1.pth not yet removed:
    # the save is complete
    'after_commit': ('epoch_1.pth:remove:1', 8),
}


@pytest.mark.compat
@pytest.mark.parametrize('point', list(CRASHES))
def test_killed_at_a_save_resumes_from_the_last_complete_one(
        tmp_path, uninterrupted, point, train):
    crash, resume_iter = CRASHES[point]
    work = tmp_path / 'work'
    killed(train(work, crash=crash))
    # no dangling pointer, whatever the moment of the kill
    assert checkpoint_problem(pointer_target(work)) is None

    run = train(work, resume=True)
    log = finished(run)
    assert warnings_in(log) == []  # nothing to fall back from
    step = resume_iter // 4
    assert f'resumed epoch: {step}, iter: {resume_iter}' in log
    assert_same_state(run.start, uninterrupted / f'epoch_{step}.pth')
    # the rest of the run is the uninterrupted one's
    assert_same_weights(work / 'epoch_3.pth', uninterrupted / 'epoch_3.pth')
    # max_keep_ckpts=1: one complete checkpoint, no staged file left
    assert checkpoint_files(work) == ['epoch_3.pth', 'last_checkpoint']
    assert pointer_target(work) == str(work / 'epoch_3.pth')
    assert not glob.glob(str(work / '**' / '*incomplete*'), recursive=True)


def test_killed_during_the_first_write_warns_and_starts_over(
        tmp_path, uninterrupted, train):
    work = tmp_path / 'work'
    killed(train(work, crash='epoch_1.pth:half:1'))
    assert not (work / 'epoch_1.pth').exists()  # never a partial one
    assert not (work / 'last_checkpoint').exists()

    run = train(work, resume=True)
    log = finished(run)
    assert warnings_in(log) == [
        f'Auto-resume: no complete checkpoint in {work} (there is no '
        f'{work}/last_checkpoint); training starts from iteration 0.'
    ]
    assert load(run.start)['iter'] == 0
    assert_same_weights(work / 'epoch_3.pth', uninterrupted / 'epoch_3.pth')
    assert checkpoint_files(work) == ['epoch_3.pth', 'last_checkpoint']
    assert not glob.glob(str(work / '**' / '*incomplete*'), recursive=True)


def _truncate(path):
    size = path.stat().st_size
    with open(path, 'r+b') as f:
        f.truncate(size // 2)
    return f'is truncated or corrupt ({size // 2} bytes; zip: File is not ' \
           'a zip file)'


def _delete(path):
    path.unlink()
    return 'does not exist'


@pytest.mark.parametrize('damage', [_truncate, _delete])
def test_resume_falls_back_from_a_broken_latest_checkpoint(
        tmp_path, uninterrupted, damage, train):
    # what mmengine's own CheckpointHook can leave, or a disk can do
    work = tmp_path / 'work'
    shutil.copytree(uninterrupted, work)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_3.pth'))
    problem = damage(work / 'epoch_3.pth')

    run = train(work, resume=True, max_keep=-1)
    log = finished(run)
    assert warnings_in(log) == [
        f'Auto-resume: last_checkpoint names {work}/epoch_3.pth, which '
        f'{problem}; resuming from {work}/epoch_2.pth, the newest complete '
        f'checkpoint in {work}.'
    ]
    assert 'resumed epoch: 2, iter: 8' in log
    assert_same_state(run.start, uninterrupted / 'epoch_2.pth')
    assert_same_weights(work / 'epoch_3.pth', uninterrupted / 'epoch_3.pth')


def test_the_reported_wreck_starts_over_with_a_warning(
        tmp_path, uninterrupted, train):
    # issue 8, as mmengine's CheckpointHook (max_keep_ckpts=1) left it after
    # a kill while writing epoch_2.pth: epoch_1.pth deleted, epoch_2.pth
    # partial, last_checkpoint naming epoch_1.pth
    work = tmp_path / 'work'
    shutil.copytree(uninterrupted, work)
    (work / 'epoch_1.pth').unlink()
    (work / 'epoch_3.pth').unlink()
    problem = _truncate(work / 'epoch_2.pth')
    (work / 'last_checkpoint').write_text(str(work / 'epoch_1.pth'))

    run = train(work, resume=True)
    log = finished(run)
    assert warnings_in(log) == [
        f'Auto-resume: no complete checkpoint in {work} (last_checkpoint '
        f'names {work}/epoch_1.pth, which does not exist; epoch_2.pth '
        f'{problem}); training starts from iteration 0.'
    ]
    assert load(run.start)['iter'] == 0
    assert_same_weights(work / 'epoch_3.pth', uninterrupted / 'epoch_3.pth')
    assert checkpoint_files(work) == ['epoch_3.pth', 'last_checkpoint']


def test_previous_best_checkpoint_survives_a_kill_while_writing_the_next(
        tmp_path, train):
    work = tmp_path / 'work'
    killed(train(work, best=True, crash='best_score_epoch_2.pth:half:1'))
    assert checkpoint_problem(str(work / 'best_score_epoch_1.pth')) is None
    files = checkpoint_files(work)
    staged = [n for n in files if n.startswith('.best_score_epoch_2.pth.')]
    assert len(staged) == 1 and staged[0].split('-')[0] == \
        '.best_score_epoch_2.pth.incomplete'
    assert sorted(set(files) - set(staged)) == [
        'best_score_epoch_1.pth', 'epoch_2.pth', 'last_checkpoint'
    ]


def test_every_config_saves_with_the_atomic_hook():
    configs = sorted(
        p for p in glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                             recursive=True)
        if '_base_' not in p.split(os.sep))
    # the glob must see every family, not pass on an empty or wrong folder
    families = {osp.relpath(osp.dirname(p), REPO) for p in configs}
    assert families == {'configs/mask_rcnn', 'configs/cascade',
                        'configs/dino', 'configs/upernet'}, families
    hooks = {
        osp.relpath(p, REPO):
        Config.fromfile(p).default_hooks.checkpoint.type
        for p in configs
    }
    assert hooks == {p: HOOK for p in hooks}
