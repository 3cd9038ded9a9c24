# Copyright (c) gcvit_mm contributors. All rights reserved.
"""Setup for gcvit_mm: a GC ViT backbone for MMDetection 3.x / MMSegmentation 1.x.

torch, mmcv (with compiled ops), mmengine, mmdet and mmsegmentation are installed
by ``tools/install.sh`` (see requirements/mminstall.txt), deliberately not listed in
``install_requires`` so that ``pip install -e .`` never pulls a CUDA torch or an
mmcv without ops.
"""
import os
import os.path as osp
import platform
import re
import runpy
import shutil
import sys

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def get_version():
    """Read ``__version__`` from gcvit_mm/version.py without importing it."""
    with open(osp.join(HERE, 'gcvit_mm', 'version.py'), encoding='utf-8') as f:
        match = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]", f.read(),
                          re.M)
    if match is None:
        raise RuntimeError('cannot find __version__ in gcvit_mm/version.py')
    return match.group(1)


def python_requires():
    """'>=3.8, <3.13' from gcvit_mm/supported.py (which imports nothing)."""
    (low_major, low_minor), (high_major, high_minor) = runpy.run_path(
        osp.join(HERE, 'gcvit_mm', 'supported.py'))['PYTHON']
    return f'>={low_major}.{low_minor}, <{high_major}.{high_minor + 1}'


def parse_requirements(fname):
    """Requirement lines of ``fname`` (comments and blank lines dropped)."""
    reqs = []
    with open(osp.join(HERE, fname), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                reqs.append(line)
    return reqs


def add_mim_extension():
    """Put configs/, tools/ and model-index.yml under gcvit_mm/.mim, where
    mmengine (``gcvit_mm::`` config paths, ``mmengine.hub.get_config``) and
    mim (``mim train gcvit_mm``) look for them: symlinks for an editable
    install, copies for a wheel or an sdist. As mmdet's, mmseg's and
    mmpretrain's setup.py, plus setuptools' PEP 660 editable install
    (``editable_wheel``), which newer pip runs instead of ``develop``."""
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        # symlinks fail on Windows
        mode = 'copy' if platform.system() == 'Windows' else 'symlink'
    elif 'sdist' in sys.argv or 'bdist_wheel' in sys.argv:
        mode = 'copy'
    else:
        return
    mim_path = osp.join(HERE, 'gcvit_mm', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in ('configs', 'tools', 'model-index.yml'):
        src, dst = osp.join(HERE, name), osp.join(mim_path, name)
        if not osp.exists(src):
            continue  # an sdist's setup.py: .mim came with the sdist
        if osp.isfile(dst) or osp.islink(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isfile(src):
            shutil.copyfile(src, dst)
        else:
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                '__pycache__', '*.pyc'))


def readme():
    path = osp.join(HERE, 'README.md')
    if not osp.exists(path):
        return ''
    with open(path, encoding='utf-8') as f:
        return f.read()


add_mim_extension()
setup(
    name='gcvit_mm',
    version=get_version(),
    description='GC ViT (Global Context Vision Transformer) backbone for '
    'MMDetection 3.x and MMSegmentation 1.x',
    long_description=readme(),
    long_description_content_type='text/markdown',
    license='Apache License 2.0',
    packages=find_packages(exclude=('configs', 'configs.*', 'tools',
                                    'tools.*', 'tests', 'tests.*')),
    include_package_data=True,
    python_requires=python_requires(),
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'tests': parse_requirements('requirements/tests.txt'),
        'mim': parse_requirements('requirements/mminstall.txt'),
    },
    # No 'License ::' classifier: setuptools >= 77 deprecates those (a
    # warning on every build); `license` above says it.
    classifiers=[
        'Programming Language :: Python :: 3',
        'Operating System :: OS Independent',
    ],
    zip_safe=False,
)
