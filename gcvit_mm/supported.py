"""The Python and torch versions gcvit_mm supports, checked first thing by
``import gcvit_mm`` (setup.py reads PYTHON from here too).

Plain syntax on purpose: an unsupported Python must reach the check."""
import re
import sys

# Oldest and newest Python minor versions, both tested.
PYTHON = ((3, 8), (3, 12))
# scaled_dot_product_attention, which every attention path uses, is 2.0's.
TORCH_MIN = (2, 0)


def check_python(version_info=sys.version_info) -> None:
    """Raises ImportError (one line) outside :data:`PYTHON`."""
    low, high = PYTHON
    if not low <= tuple(version_info[:2]) <= high:
        raise ImportError(
            'gcvit_mm supports Python %d.%d to %d.%d; this is Python %d.%d: '
            'use one of those' % (low + high + tuple(version_info[:2])))


def torch_version(version: str) -> tuple:
    """(major, minor) of a torch version string such as '2.1.2+cu121'."""
    match = re.match(r'(\d+)\.(\d+)', version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def check_torch(version: str) -> None:
    """Raises ImportError (one line) below :data:`TORCH_MIN`."""
    if torch_version(version) < TORCH_MIN:
        raise ImportError(
            'gcvit_mm needs torch >= %d.%d (scaled_dot_product_attention); '
            'this is torch %s: install a newer one, e.g. pip install '
            'torch==2.1.2' % (TORCH_MIN + (version, )))
