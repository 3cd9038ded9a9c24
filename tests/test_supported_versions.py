"""The supported Python and torch versions: ``import gcvit_mm`` outside them
is one ImportError line, setup.py says the same range, and nothing in the
code needs a Python newer than the oldest supported one (vermin)."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from gcvit_mm.supported import PYTHON, check_python, check_torch

pytestmark = pytest.mark.compat

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _import_gcvit_mm(python, tmp_path, extra_path=()):
    """``python -c 'import gcvit_mm'`` with the repository on its path;
    returns (exit code, last stderr line)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*extra_path, REPO]))
    result = subprocess.run([python, '-c', 'import gcvit_mm'], cwd=tmp_path,
                            env=env, capture_output=True, text=True)
    return result.returncode, result.stderr.strip().splitlines()[-1]


def test_torch_below_2_0_is_refused_in_one_line(tmp_path):
    fake = tmp_path / 'fake' / 'torch'
    fake.mkdir(parents=True)
    (fake / '__init__.py').write_text("__version__ = '1.13.1+cu117'\n")
    rc, line = _import_gcvit_mm(sys.executable, tmp_path,
                                [str(tmp_path / 'fake')])
    assert rc == 1
    assert line == (
        'ImportError: gcvit_mm needs torch >= 2.0 '
        '(scaled_dot_product_attention); this is torch 1.13.1+cu117: install '
        'a newer one, e.g. pip install torch==2.1.2')
    check_torch('2.0.1+cu117')  # the oldest supported passes


@pytest.mark.parametrize('version', [(3, 7), (3, 13)])
def test_python_outside_3_8_to_3_12_is_refused_in_one_line(version):
    with pytest.raises(ImportError) as err:
        check_python(version + (0, 'final', 0))
    assert str(err.value) == (
        f'gcvit_mm supports Python 3.8 to 3.12; this is Python '
        f'{version[0]}.{version[1]}: use one of those')
    check_python(sys.version_info)


def test_a_newer_python_stops_at_the_check_before_any_other_import(tmp_path):
    """The check runs before torch is imported: Python 3.13 (pyenv's, no
    torch there) gets the version line, not a missing-module error."""
    python = '/root/.pyenv/versions/3.13.0/bin/python'
    if not osp.exists(python):
        pytest.skip('no Python 3.13 on this machine')
    rc, line = _import_gcvit_mm(python, tmp_path)
    assert rc == 1
    assert line == ('ImportError: gcvit_mm supports Python 3.8 to 3.12; '
                    'this is Python 3.13: use one of those')


def test_setup_py_requires_the_same_pythons(tmp_path):
    result = subprocess.run(
        [sys.executable, 'setup.py', '-q', 'egg_info', '--egg-base',
         str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    pkg_info = (tmp_path / 'gcvit_mm.egg-info' / 'PKG-INFO').read_text()
    requires = re.search(r'^Requires-Python: (.*)$', pkg_info, re.M).group(1)
    (low_major, low_minor), (high_major, high_minor) = PYTHON
    assert sorted(r.strip() for r in requires.split(',')) == [f'<{high_major}.{high_minor + 1}',
                                           f'>={low_major}.{low_minor}']


def test_code_needs_nothing_newer_than_python_3_8():
    """vermin (requirements/tests.txt) over the package, tools, configs and
    tests: no syntax, module or function newer than Python 3.8."""
    result = subprocess.run(
        [sys.executable, '-c', 'import sys, vermin; sys.exit(vermin.main())',
         '--no-tips', '--violations',
         '--eval-annotations', '--target=3.8-', 'gcvit_mm', 'tools',
         'configs', 'tests', 'setup.py'],
        cwd=REPO, capture_output=True, text=True)
    assert "No module named 'vermin'" not in result.stderr, (
        'vermin is missing: pip install -r requirements/tests.txt')
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]


def test_onnx_export_tool_names_the_torch_it_needs(tmp_path):
    """On a torch without the dynamo ONNX exporter (2.0, 2.1) the export
    tool stops with one line naming the torch it needs."""
    import torch

    from gcvit_mm.deploy import exporter_unavailable
    if exporter_unavailable() is None:
        pytest.skip('this torch has the ONNX exporter: '
                    'tests/test_export_onnx.py runs it')
    result = subprocess.run(
        [sys.executable, 'tools/deploy/export_onnx.py',
         'configs/upernet/gcvit_xxt_toy_ade.py', '--out',
         str(tmp_path / 'model.onnx'), '--shape', '128', '128'],
        cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: the ONNX exporter needs torch >= 2.6 (torch.onnx's dynamo "
        f'exporter with torch.export.Dim.DYNAMIC); this is torch '
        f'{torch.__version__}')
    assert not (tmp_path / 'model.onnx').exists()
