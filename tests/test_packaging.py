"""Packaging: what a wheel built from this tree holds, and what a user of
the installed wheel runs from an empty folder: ``gcvit_mm::`` config bases
through the installed tools and ``mim``, and our installed configs through
mmdet's and mmseg's own ``tools/train.py``, whose bad input then stops with
the same one line as ours.

A folder of gcvit_mm/ without ``__init__.py`` is a namespace package:
``find_packages`` skips it, so wheels lacked ``gcvit_mm/datasets`` (the toy
configs failed on any non-editable install), and with a checkout installed
editable next to the wheel its module was silently imported from there.
"""
import glob
import json
import os
import os.path as osp
import posixpath
import re
import shutil
import site
import subprocess
import sys
import time
import zipfile
from types import SimpleNamespace

import pytest

from detection_utils import make_tiny_toy_data

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PKG = 'gcvit_mm'
# Not part of a clean clone: VCS data, build output, local data and runs.
NOT_SOURCE_TOP = {'.git', 'build', 'dist', 'data', 'work_dirs',
                  '.pytest_cache'}
NOT_SOURCE_ANY = shutil.ignore_patterns('__pycache__', '*.pyc',
                                        '*.egg-info', '.mim')
# What setup.py puts under gcvit_mm/.mim (MANIFEST.in: these suffixes).
MIM_SOURCES = {'configs': ('.py', '.yml', '.md'), 'tools': ('.py', '.sh')}


def _walk_py(root):
    """(folder relative to root, '/'-separated; its .py files) for every
    folder under root/gcvit_mm that holds .py files."""
    for folder, subdirs, files in os.walk(osp.join(root, PKG)):
        subdirs[:] = sorted(s for s in subdirs
                            if s != '__pycache__' and not s.startswith('.'))
        py = sorted(f for f in files if f.endswith('.py'))
        if py:
            yield osp.relpath(folder, root).replace(os.sep, '/'), py


def package_dirs(root):
    """Folders under root/gcvit_mm that must be packages: those holding .py
    files and the folders above them (find_packages does not look inside a
    folder that has no __init__.py)."""
    dirs = set()
    for rel, _ in _walk_py(root):
        while rel and rel not in dirs:
            dirs.add(rel)
            rel = posixpath.dirname(rel)
    return sorted(dirs)


def tree_py_files(root):
    return sorted(f'{rel}/{f}' for rel, files in _walk_py(root)
                  for f in files)


def copy_source(dst):
    """Copy the tree as a clean clone has it. Building in place would write
    build/ and *.egg-info into the checkout, and setuptools puts whatever an
    earlier build left in build/lib into the wheel: a stale copy of a
    package could hide that it is missing now."""
    def ignore(folder, names):
        skip = set(NOT_SOURCE_ANY(folder, names))
        if osp.samefile(folder, REPO):
            skip |= NOT_SOURCE_TOP & set(names)
        return skip

    shutil.copytree(REPO, dst, ignore=ignore, symlinks=True)
    return str(dst)


def pip(*args, python=sys.executable, cwd=None):
    # --no-index everywhere: only local files, never the network.
    return subprocess.run(
        [str(python), '-m', 'pip', '--disable-pip-version-check', *args],
        capture_output=True, text=True, timeout=300, cwd=cwd)


def build_wheel(src, out_dir):
    res = pip('wheel', '--no-index', '--no-deps', '--no-build-isolation',
              '-w', str(out_dir), str(src))
    assert res.returncode == 0, (
        f'pip wheel {src} failed:\n{res.stdout[-3000:]}{res.stderr[-3000:]}')
    wheels = glob.glob(osp.join(out_dir, f'{PKG}-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


def wheel_names(path):
    with zipfile.ZipFile(path) as zf:
        return sorted(zf.namelist())


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    """The wheel pip builds from (a clean copy of) this repository."""
    tmp = tmp_path_factory.mktemp('packaging')
    src = copy_source(tmp / 'src')
    t0 = time.perf_counter()
    wheel = build_wheel(src, tmp / 'dist')
    seconds = time.perf_counter() - t0
    print(f'\n[packaging] pip wheel: {seconds:.1f} s, '
          f'{osp.basename(wheel)}')
    return dict(src=src, wheel=wheel, seconds=seconds)


def test_every_source_folder_is_a_package():
    missing = [d for d in package_dirs(REPO)
               if not osp.isfile(osp.join(REPO, d, '__init__.py'))]
    assert not missing, '; '.join(
        f'{d}/ holds Python files but has no __init__.py: add '
        f'{d}/__init__.py (a docstring is enough), or find_packages leaves '
        f'the folder out of wheels and it imports as a namespace package'
        for d in missing)


def test_wheel_holds_every_package_and_module(built):
    src, names = built['src'], set(wheel_names(built['wheel']))
    problems = []
    for d in package_dirs(src):
        wanted = [f'{d}/__init__.py'] + [
            f for f in tree_py_files(src) if posixpath.dirname(f) == d]
        lacking = sorted({posixpath.basename(f) for f in wanted} -
                         {posixpath.basename(f) for f in names
                          if posixpath.dirname(f) == d})
        if lacking:
            why = '' if osp.isfile(osp.join(src, d, '__init__.py')) else (
                f' (the tree has no {d}/__init__.py, so find_packages '
                f'skips the folder: add one)')
            problems.append(f'{d}/: {", ".join(lacking)}{why}')
    assert not problems, 'the wheel lacks ' + '; '.join(problems)
    # Nothing but the tree's modules: no stale or foreign .py files.
    wheel_py = sorted(n for n in names if n.endswith('.py')
                      and not n.startswith(f'{PKG}/.mim/'))
    assert wheel_py == tree_py_files(src)
    # Only the package and its metadata at the top: no tests/, tools/,
    # configs/ as top-level packages.
    top = sorted({n.split('/')[0] for n in names})
    assert len(top) == 2 and top[0] == PKG and re.fullmatch(
        rf'{PKG}-[^-/]+\.dist-info', top[1]), top


def mim_files(root):
    """What gcvit_mm/.mim must hold for a tree at ``root``: its configs
    (with metafiles and READMEs), tools and model-index.yml."""
    files = {'model-index.yml'}
    for top, suffixes in MIM_SOURCES.items():
        for folder, subdirs, names in os.walk(osp.join(root, top)):
            subdirs[:] = [d for d in subdirs if d != '__pycache__']
            files |= {osp.relpath(osp.join(folder, n), root).replace(
                os.sep, '/') for n in names if n.endswith(suffixes)}
    return sorted(f'{PKG}/.mim/{f}' for f in files)


def test_wheel_carries_configs_tools_and_model_index(built):
    """mmengine finds `gcvit_mm::` configs and the model index, and mim
    finds the tools, under gcvit_mm/.mim of the installed package."""
    names = wheel_names(built['wheel'])
    assert [n for n in names if n.startswith(f'{PKG}/.mim/')] == \
        mim_files(built['src'])
    assert f'{PKG}/.mim/configs/mask_rcnn/gcvit_t_coco.py' in names
    assert f'{PKG}/.mim/tools/train.py' in names


def test_sdist_builds_the_same_wheel(built, tmp_path):
    """pip install from an sdist (PyPI, `python -m build`) runs setup.py
    from the unpacked sdist, which reads requirements/*.txt and README.md."""
    src = copy_source(tmp_path / 'src')
    res = subprocess.run(
        [sys.executable, 'setup.py', '-q', 'sdist', '-d',
         str(tmp_path / 'sdist')],
        cwd=src, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    sdist, = glob.glob(str(tmp_path / 'sdist' / f'{PKG}-*.tar.gz'))
    res = pip('wheel', '--no-index', '--no-deps', '--no-build-isolation',
              '-w', str(tmp_path / 'dist'), sdist)
    assert res.returncode == 0, (
        'pip cannot build a wheel from the sdist (a file setup.py reads '
        'missing from it? MANIFEST.in lists them):\n' +
        res.stdout[-2000:] + res.stderr[-2000:])
    wheel, = glob.glob(str(tmp_path / 'dist' / f'{PKG}-*.whl'))
    assert wheel_names(wheel) == wheel_names(built['wheel'])


# Runs a script as `python SCRIPT ARGS...` would (sys.argv, sys.path[0]),
# then reports the file of every gcvit_mm module this same process imported
# (None for a namespace package): the check is of the process that trained.
RUN_AND_REPORT = '''\
import json, os, runpy, sys
script = sys.argv[1]
sys.argv = sys.argv[1:]
sys.path[0] = os.path.dirname(script)
try:
    runpy.run_path(script, run_name='__main__')
finally:
    print('IMPORTED ' + json.dumps(
        {name: getattr(mod, '__file__', None)
         for name, mod in sorted(sys.modules.items())
         if name == 'gcvit_mm' or name.startswith('gcvit_mm.')}))
'''


def make_venv(path):
    """A venv that sees this interpreter's packages (torch, mmcv, mmdet,
    ..., and the editable gcvit_mm) after its own site-packages. A .pth
    running site.addsitedir does what --system-site-packages does, also when
    this python is itself a venv (--system-site-packages would then reach
    the base interpreter's packages, not this venv's); addsitedir also runs
    the .pth files there, so the editable install's import hook is active,
    as on a user's machine that has both."""
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip',
                    str(path)], check=True, timeout=120)
    python = osp.join(path, 'bin', 'python')
    purelib = subprocess.run(
        [python, '-c', 'import sysconfig; '
         'print(sysconfig.get_paths()["purelib"])'],
        check=True, capture_output=True, text=True).stdout.strip()
    outer = [p for p in site.getsitepackages() if osp.isdir(p)]
    if site.ENABLE_USER_SITE and osp.isdir(site.getusersitepackages()):
        outer.append(site.getusersitepackages())
    with open(osp.join(purelib, '_outer_env.pth'), 'w') as f:
        f.write('import site; ' + '; '.join(
            f'site.addsitedir({p!r})' for p in outer) + '\n')
    return python, osp.realpath(purelib)


# A user's config on top of an installed one, made small and fast: the
# tests' small GC ViT, 4 training images (2 iterations), then validation.
USER_CONFIG = {
    'det': """
custom_imports = dict(imports=['gcvit_mm', 'gcvit_mm.datasets.toy_coco'],
                      allow_failed_imports=False)
model = dict(
    backbone=dict(arch=dict(_delete_=True, dim=32, depths=(2, 2, 2, 2),
                            num_heads=(1, 2, 4, 8), mlp_ratio=2.,
                            layer_scale=None), drop_path_rate=0.),
    neck=dict(in_channels=[32, 64, 128, 256]),
    test_cfg=dict(rcnn=dict(score_thr=0.)))
train_dataloader = dict(batch_size=2, num_workers=0,
                        persistent_workers=False, dataset=dict(indices=4))
val_dataloader = dict(batch_size=2, num_workers=0, persistent_workers=False)
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1))
custom_hooks = []
""",
    'seg': """
custom_imports = dict(imports=['gcvit_mm', 'gcvit_mm.datasets.toy_ade'],
                      allow_failed_imports=False)
gen_cfg = dict(num_train=4, num_val=2, img_size=(96, 120), seed=0)
model = dict(
    backbone=dict(arch=dict(_delete_=True, dim=16, depths=(2, 2, 2, 2),
                            num_heads=(1, 2, 4, 8), mlp_ratio=2.,
                            layer_scale=None), drop_path_rate=0.),
    decode_head=dict(in_channels=[16, 32, 64, 128], channels=32),
    auxiliary_head=dict(in_channels=64, channels=16))
train_dataloader = dict(batch_size=2, num_workers=0,
                        persistent_workers=False,
                        dataset=dict(gen_cfg=gen_cfg))
val_dataloader = dict(num_workers=0, persistent_workers=False,
                      dataset=dict(gen_cfg=gen_cfg))
test_dataloader = val_dataloader
param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False,
                        begin=0, end=2)]
train_cfg = dict(max_iters=2, val_interval=2)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
custom_hooks = []
""",
}
INSTALLED_CONFIG = {'det': 'mask_rcnn/gcvit_xxt_shapes.py',
                    'seg': 'upernet/gcvit_xxt_toy_ade.py'}
# What a finished run logged: its two training iterations and the metric.
TRAINED = {'det': (r'Epoch\(train\) +\[1\]\[ *2/2\]', 'coco/bbox_mAP: '),
           'seg': (r'Iter\(train\) +\[ *2/2\]', 'mIoU: ')}


@pytest.fixture(scope='module')
def installed(built, tmp_path_factory):
    """The built wheel installed in a fresh venv that sees the stack, an
    empty run folder outside the checkout, and tiny toy data."""
    tmp = tmp_path_factory.mktemp('installed')
    python, purelib = make_venv(tmp / 'venv')
    # --ignore-installed: the editable gcvit_mm of the outer env stays.
    res = pip('install', '--no-index', '--no-deps', '--ignore-installed',
              built['wheel'], python=python)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    run_dir = tmp / 'run'
    run_dir.mkdir()
    assert not osp.realpath(run_dir).startswith(osp.realpath(REPO) + os.sep)
    (run_dir / 'run_and_report.py').write_text(RUN_AND_REPORT)
    data = str(tmp / 'data')
    make_tiny_toy_data(data)  # toy_coco: 8 train, 4 val images of 96 px
    env = dict(os.environ, GCVIT_MM_DATA=data, OMP_NUM_THREADS='1')
    for var in ('PYTHONPATH', 'PYTHONHOME', 'GCVIT_MM_TRACEBACK'):
        env.pop(var, None)
    mim = osp.join(purelib, PKG, '.mim')
    return SimpleNamespace(python=python, purelib=purelib, run=run_dir,
                           data=data, env=env, mim=mim,
                           tools=osp.join(mim, 'tools'))


def run_in(installed, args, timeout=300):
    """``python ARGS`` in the venv, from the run folder."""
    return subprocess.run([installed.python] + [str(a) for a in args],
                          cwd=installed.run, env=installed.env,
                          capture_output=True, text=True, timeout=timeout)


def user_config(installed, name, kind, base, extra=''):
    """Write the run folder's ``name``: USER_CONFIG[kind] on ``base``."""
    path = installed.run / name
    path.write_text(f'_base_ = {base!r}\n{USER_CONFIG[kind]}{extra}')
    return name


def assert_trained(result, kind, work_dir):
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    [log] = glob.glob(str(work_dir / '*' / '*.log'))
    with open(log) as f:
        text = f.read()
    iters, metric = TRAINED[kind]
    assert re.search(iters, text), text[-3000:]
    assert metric in text, text[-3000:]


def imported_modules(result):
    """gcvit_mm's modules that RUN_AND_REPORT's process imported, by file."""
    reports = [line for line in result.stdout.splitlines()
               if line.startswith('IMPORTED ')]
    assert reports, (result.stdout + result.stderr)[-4000:]
    return json.loads(reports[-1][len('IMPORTED '):])


@pytest.mark.parametrize('kind', ['det', 'seg'])
def test_gcvit_mm_base_trains_through_the_installed_tools(installed, kind):
    """`_base_ = 'gcvit_mm::...'` resolves to the installed config, and the
    installed tools/train.py trains and evaluates it, importing gcvit_mm
    from the wheel only."""
    cfg = user_config(installed, f'{kind}.py', kind,
                      f'gcvit_mm::{INSTALLED_CONFIG[kind]}')
    work = installed.run / f'{kind}_tools'
    result = run_in(installed, [
        'run_and_report.py', osp.join(installed.tools, 'train.py'), cfg,
        '--work-dir', work])
    assert_trained(result, kind, work)
    imported = imported_modules(result)
    dataset = 'toy_coco' if kind == 'det' else 'toy_ade'
    for name in ('gcvit_mm', 'gcvit_mm.engine.runner',
                 f'gcvit_mm.datasets.{dataset}'):
        assert name in imported, (name, sorted(imported))
    wrong = {m: f for m, f in imported.items()
             if not (isinstance(f, str) and
                     osp.realpath(f).startswith(installed.purelib + os.sep))}
    assert not wrong, (f'imported from outside the installed wheel '
                       f'({installed.purelib}): {wrong}')


@pytest.mark.parametrize('kind', ['det', 'seg'])
def test_mim_trains_and_tests_gcvit_mm_configs(installed, kind):
    """`mim train gcvit_mm CONFIG` and `mim test gcvit_mm CONFIG
    --checkpoint CKPT` run the installed tools on a gcvit_mm:: config."""
    pytest.importorskip('mim', reason='openmim (requirements/tests.txt) '
                        'is not installed')
    cfg = user_config(installed, f'{kind}_mim.py', kind,
                      f'gcvit_mm::{INSTALLED_CONFIG[kind]}')
    work = installed.run / f'{kind}_mim'
    result = run_in(installed, ['-m', 'mim', 'train', PKG, cfg,
                                '--work-dir', work])
    assert osp.join(installed.tools, 'train.py') in result.stdout
    assert_trained(result, kind, work)
    if kind == 'seg':
        return  # one mim test run is enough
    result = run_in(installed, [
        '-m', 'mim', 'test', PKG, cfg, '--checkpoint', work / 'epoch_1.pth',
        '--work-dir', installed.run / 'det_mim_test'])
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert osp.join(installed.tools, 'test.py') in result.stdout
    assert re.search(r'Epoch\(test\).*coco/bbox_mAP: ', out), out[-3000:]


# mmdet's and mmseg's own training scripts (mim ships them in the package).
THEIR_TRAIN = {'det': ('mmdet', '.mim/tools/train.py'),
               'seg': ('mmseg', '.mim/tools/train.py')}


def their_train_py(kind):
    package, rel = THEIR_TRAIN[kind]
    module = __import__(package)
    path = osp.join(osp.dirname(module.__file__), rel)
    assert osp.isfile(path), f'{package} installed without its tools'
    return path


def error_line(result):
    """The run's single `error:` line (exit 1, no traceback)."""
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-3000:]
    assert 'Traceback' not in out, out[-3000:]
    lines = [line for line in result.stderr.splitlines()
             if line.startswith('error: ')]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


def other_arch_checkpoint(path, dim):
    """A GC ViT backbone checkpoint (gcvit_mm format) of another arch:
    one block per stage where the user configs have two."""
    import torch

    from gcvit_mm.models import GCViT
    backbone = GCViT(arch=dict(dim=dim, depths=(1, 1, 1, 1),
                               num_heads=(1, 2, 4, 8), mlp_ratio=2.,
                               layer_scale=None))
    torch.save({'state_dict': backbone.state_dict()}, str(path))
    return str(path)


@pytest.mark.parametrize('kind', ['det', 'seg'])
def test_their_train_py_trains_our_installed_config(installed, kind):
    """mmdet's (mmseg's) tools/train.py on a user config that imports
    gcvit_mm and inherits our installed config by path: it trains, and
    bad input stops it with the same one line as our tools/train.py (our
    configs select InputCheckRunner)."""
    base = osp.join(installed.mim, 'configs', INSTALLED_CONFIG[kind])
    cfg = user_config(installed, f'{kind}_theirs.py', kind, base)
    work = installed.run / f'{kind}_theirs'
    theirs = their_train_py(kind)
    assert_trained(run_in(installed, [theirs, cfg, '--work-dir', work]),
                   kind, work)

    dim = 32 if kind == 'det' else 16
    ckpt = other_arch_checkpoint(installed.run / f'{kind}_other.pth', dim)
    bad = user_config(
        installed, f'{kind}_other_arch.py', kind, base,
        f"model['backbone']['init_cfg'] = dict(_delete_=True, "
        f"type='Pretrained', "
        f"checkpoint={ckpt!r})\n")
    ours = osp.join(installed.tools, 'train.py')
    lines = [error_line(run_in(installed, [tool, bad, '--work-dir',
                                           installed.run / 'w_bad']))
             for tool in (theirs, ours)]
    assert lines[0] == lines[1]
    assert lines[0].startswith(f"error: training stopped: Checkpoint "
                               f"{ckpt!r} (gcvit_mm format) lacks "), lines[0]
    assert 'it is for another arch: its depths are (1, 1, 1, 1), this ' \
        "model's (2, 2, 2, 2)" in lines[0]


def test_mmdet_train_py_refuses_a_bad_annotation_file_as_ours(installed):
    data = installed.run / 'bad_data'
    shutil.copytree(osp.join(installed.data, 'toy_coco'), data / 'toy_coco')
    ann = data / 'toy_coco' / 'annotations' / 'instances_train.json'
    coco = json.loads(ann.read_text())
    ann.write_text(json.dumps(dict(coco, images=[], annotations=[])))
    base = osp.join(installed.mim, 'configs', INSTALLED_CONFIG['det'])
    cfg = user_config(installed, 'det_bad_data.py', 'det', base)
    env = dict(installed.env, GCVIT_MM_DATA=str(data))
    lines = [error_line(subprocess.run(
        [installed.python, tool, cfg, '--work-dir', installed.run / 'w_ann'],
        cwd=installed.run, env=env, capture_output=True, text=True,
        timeout=300))
        for tool in (their_train_py('det'),
                     osp.join(installed.tools, 'train.py'))]
    assert lines[0] == lines[1] == (
        f"error: annotation file '{ann}' (train_dataloader.dataset.ann_file)"
        ' lists no images; regenerate or re-download it, or set '
        'train_dataloader.dataset.ann_file to a COCO-format JSON file')


GET_EVERY_CONFIG = """
import json, sys
import gcvit_mm
from mmengine.fileio import load
from mmengine.hub import get_config
import os.path as osp
mim = osp.join(osp.dirname(gcvit_mm.__file__), '.mim')
read = {}
for metafile in load(osp.join(mim, 'model-index.yml'))['Import']:
    for model in load(osp.join(mim, metafile))['Models']:
        rel = model['Config'].partition('/')[-1]
        cfg = get_config('gcvit_mm::' + rel)
        read[rel] = (cfg.filename, cfg.model.type)
print('READ ' + json.dumps(read))
"""


def test_get_config_reads_every_model_index_entry(installed):
    """mmengine.hub.get_config('gcvit_mm::...') (the metafiles' `Config`)
    reads every entry of the installed model index."""
    result = run_in(installed, ['-c', GET_EVERY_CONFIG])
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    [line] = [x for x in result.stdout.splitlines()
              if x.startswith('READ ')]
    read = json.loads(line[len('READ '):])
    configs = osp.join(installed.mim, 'configs')
    expected = sorted(
        osp.relpath(p, configs) for p in glob.glob(osp.join(configs, '*',
                                                            '*.py'))
        if '_base_' not in p)
    assert sorted(read) == expected
    for rel, (filename, model_type) in read.items():
        assert filename == osp.join(configs, rel)
        assert model_type in ('MaskRCNN', 'CascadeRCNN', 'DINO',
                              'EncoderDecoder'), (rel, model_type)
