"""Packaging: what a wheel built from this tree holds, and that the installed
wheel trains the toy detection config from outside the checkout.

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

import pytest

from detection_utils import TOY_CONFIGS, TOOLS, make_tiny_toy_data

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PKG = 'gcvit_mm'
# Not part of a clean clone: VCS data, build output, local data and runs.
NOT_SOURCE_TOP = {'.git', 'build', 'dist', 'data', 'work_dirs',
                  '.pytest_cache'}
NOT_SOURCE_ANY = shutil.ignore_patterns('__pycache__', '*.pyc',
                                        '*.egg-info')


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
    wheel_py = sorted(n for n in names if n.endswith('.py'))
    assert wheel_py == tree_py_files(src)
    # Only the package and its metadata at the top: no tests/, tools/,
    # configs/ as top-level packages.
    top = sorted({n.split('/')[0] for n in names})
    assert len(top) == 2 and top[0] == PKG and re.fullmatch(
        rf'{PKG}-[^-/]+\.dist-info', top[1]), top


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


def test_installed_wheel_trains_outside_the_checkout(built, tmp_path):
    python, purelib = make_venv(tmp_path / 'venv')
    # --ignore-installed: the editable gcvit_mm of the outer env stays.
    res = pip('install', '--no-index', '--no-deps', '--ignore-installed',
              built['wheel'], python=python)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    run_dir = tmp_path / 'run'  # the cwd: outside the repository
    run_dir.mkdir()
    assert not osp.realpath(run_dir).startswith(osp.realpath(REPO) + os.sep)
    (run_dir / 'run_and_report.py').write_text(RUN_AND_REPORT)
    make_tiny_toy_data(str(tmp_path / 'data'))  # 8 train images, 96 px
    env = dict(os.environ, GCVIT_MM_DATA=str(tmp_path / 'data'),
               OMP_NUM_THREADS='1')
    for var in ('PYTHONPATH', 'PYTHONHOME', 'GCVIT_MM_TRACEBACK'):
        env.pop(var, None)
    work_dir = tmp_path / 'work'
    res = subprocess.run(
        [python, 'run_and_report.py', osp.join(TOOLS, 'train.py'),
         TOY_CONFIGS['mask_rcnn'], '--work-dir', str(work_dir),
         '--cfg-options', 'train_cfg.max_epochs=1',
         # 4 images at batch 2: two iterations. val_begin past the last
         # epoch: no validation (the loop would run it after the last one).
         'train_dataloader.dataset.indices=4', 'train_cfg.val_begin=2',
         'train_dataloader.num_workers=0',
         'train_dataloader.persistent_workers=False',
         'default_hooks.logger.interval=1',
         'default_hooks.checkpoint.save_last=False'],
        cwd=run_dir, env=env, capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    reports = [line for line in res.stdout.splitlines()
               if line.startswith('IMPORTED ')]
    assert reports, out[-4000:]
    imported = json.loads(reports[-1][len('IMPORTED '):])
    for name in ('gcvit_mm', 'gcvit_mm.datasets',
                 'gcvit_mm.datasets.toy_coco'):
        assert name in imported, (name, out[-4000:])
    wrong = {m: f for m, f in imported.items()
             if not (isinstance(f, str) and
                     osp.realpath(f).startswith(purelib + os.sep))}
    assert not wrong, (
        f'imported from outside the installed wheel ({purelib}): {wrong}')
    assert res.returncode == 0, out[-4000:]

    logs = glob.glob(str(work_dir / '*' / '*.log'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        iters = re.findall(r'Epoch\(train\) +\[(\d+)\]\[ *(\d+)/(\d+)\]',
                           f.read())
    assert iters == [('1', '1', '2'), ('1', '2', '2')]
