"""The one unpickling policy behind every checkpoint gcvit_mm loads, on
every supported torch (2.0 to 2.14), whatever ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``
says: tensors, containers and numbers, plus the few globals that mmengine's
and the paper's checkpoints hold (:func:`allowed_globals`); nothing that can
run code.

Two ways to apply it, chosen by what the installed torch can do:

- torch >= 2.6: torch's own weights-only unpickler
  (``torch.load(weights_only=True)``) with our globals allowed only for the
  duration of our load (``torch.serialization.safe_globals``), never
  process-wide, so other libraries' ``torch.load`` accept no more than torch
  lets them.
- older torch, whose weights-only allow-list cannot be extended: a
  restricted unpickler handed to ``torch.load`` as its ``pickle_module``
  (the "Restricting Globals" recipe of Python's pickle documentation), with
  torch's tensor globals plus ours, and ``BUILD`` (setting an object's
  state) only on instances of the allowed types, as torch's unpickler.

A checkpoint written by mmengine's CheckpointHook holds, besides tensors:

- numpy's ``ndarray``, ``dtype``, ``_reconstruct`` and ``scalar``: the log
  history values. numpy 2 pickles the last two as
  ``numpy._core.multiarray.*``, numpy 1 as ``numpy.core.multiarray.*``: both
  names are allowed and mean this numpy's objects, so checkpoints move
  between machines with either numpy;
- ``mmengine.logging.HistoryBuffer``: the log history itself;
- ``builtins.getattr``: each HistoryBuffer pickles its table of statistics
  methods (``HistoryBuffer.min``, ``.max``, ...), and pickle refers to a
  method as ``getattr(HistoryBuffer, 'min')``. ``getattr`` itself is never
  allowed (a crafted file could walk from an allowed object to
  ``os.system``): :func:`history_buffer_method` stands in for it and
  resolves only HistoryBuffer's own statistics methods.

The paper's training script also saves its ``argparse.Namespace`` options.
"""
import argparse
import codecs
import collections
import functools
import os
import pickle
import sys
from typing import Any, Dict

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

# The weights-only allow-list of torch.load takes (object, name) entries in a
# scoped context from torch 2.6.
TORCH_SCOPES_ALLOW_LIST = (
    hasattr(torch.serialization, 'safe_globals')
    and torch.__version__ >= (2, 6))


def history_buffer_method(owner: Any, name: str) -> Any:
    """``getattr`` restricted to ``HistoryBuffer.<statistics method>``.

    Raises:
        pickle.UnpicklingError: for any other owner or name.
    """
    if owner is HistoryBuffer and callable(
            HistoryBuffer.__dict__.get(name)) and not name.startswith('_'):
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({owner!r}, {name!r}) while loading a checkpoint: '
        f'only HistoryBuffer statistics methods are allowed')


def _numpy_multiarray():
    # numpy 2 keeps the module as numpy._core (numpy.core warns there).
    if np.lib.NumpyVersion(np.__version__) >= '2.0.0':
        return np._core.multiarray
    return np.core.multiarray


@functools.lru_cache(maxsize=None)
def allowed_globals() -> Dict[str, Any]:
    """The globals a checkpoint may name beyond torch's tensor globals:
    ``{'module.name': object}``, each name as a pickle spells it."""
    multiarray = _numpy_multiarray()
    allowed = {
        'numpy.ndarray': np.ndarray,
        'numpy.dtype': np.dtype,
        'mmengine.logging.history_buffer.HistoryBuffer': HistoryBuffer,
        'builtins.getattr': history_buffer_method,
        'argparse.Namespace': argparse.Namespace,
    }
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        allowed[f'{module}._reconstruct'] = multiarray._reconstruct
        allowed[f'{module}.scalar'] = multiarray.scalar
    return allowed


def _torch_allow_list() -> list:
    """:func:`allowed_globals` as ``torch.serialization.safe_globals``
    entries. torch's unpickler sets an object's state only for allowed
    types: with numpy >= 1.25 a dtype is an instance of its own class
    (``numpy.dtypes.Float64DType``, ...), allowed here for the bool, integer,
    float and complex types."""
    entries = [(obj, name) for name, obj in allowed_globals().items()]
    dtype_classes = {type(np.dtype(code)) for code in '?bBhHiIlLqQefdgFDG'}
    return entries + sorted(dtype_classes - {np.dtype}, key=str)


def _tensor_globals() -> Dict[str, Any]:
    """What ``torch.save`` writes for tensors, parameters, state dicts and
    optimizer states (storages are resolved by torch.load itself): the
    non-numpy part of torch 2.13's weights-only allow-list, which older
    torch's lacks in part (``collections.Counter``, ``builtins.set``)."""
    found = {
        'collections.OrderedDict': collections.OrderedDict,
        'collections.Counter': collections.Counter,  # in mmdet's checkpoints
        'torch.Size': torch.Size,
        'torch.device': torch.device,
        'torch.nn.parameter.Parameter': torch.nn.Parameter,
        # pickle protocol 2 (torch.save's) writes bytes, sets and complex
        # numbers through these
        '_codecs.encode': codecs.encode,
        'builtins.set': set,
        'builtins.complex': complex,
        'builtins.bytearray': bytearray,
    }
    for name in ('_rebuild_tensor_v2', '_rebuild_tensor_v3',
                 '_rebuild_parameter', '_rebuild_parameter_with_state'):
        if hasattr(torch._utils, name):  # v3: torch >= 2.1
            found[f'torch._utils.{name}'] = getattr(torch._utils, name)
    for name, value in vars(torch).items():
        if isinstance(value, torch.dtype):  # pickled as torch.float32, ...
            found[f'torch.{name}'] = value
    return found


# Protocol 2 pickles name Python 2's modules (pickle maps them back).
_PYTHON2_MODULES = {'__builtin__': 'builtins'}


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that finds only the allow-listed globals and sets the
    state (``BUILD``) only of instances of the allowed types.

    It is pickle's pure-Python unpickler: the C one offers no hook on
    ``BUILD``, which would let a file set attributes on an allowed class or
    function (``HistoryBuffer.min = ...``) for the whole process. The pickle
    of a checkpoint is small (tensors are stored beside it), so its speed
    does not matter.
    """

    dispatch = dict(pickle._Unpickler.dispatch)
    _BUILDABLE = (torch.Tensor, collections.OrderedDict, np.ndarray, np.dtype,
                  HistoryBuffer, argparse.Namespace)

    def find_class(self, module: str, name: str) -> Any:
        module = _PYTHON2_MODULES.get(module, module)
        full_name = f'{module}.{name}'
        allowed = _restricted_globals()
        if full_name not in allowed:
            raise pickle.UnpicklingError(
                f'GLOBAL {full_name} was not an allowed global while loading '
                f'a checkpoint')
        return allowed[full_name]

    def load_build(self) -> None:
        target = self.stack[-2]  # BUILD pops the state above it
        if not isinstance(target, self._BUILDABLE):
            what = getattr(target, '__qualname__', type(target).__qualname__)
            raise pickle.UnpicklingError(
                f'refusing to set the state of {what} while loading a '
                f'checkpoint')
        pickle._Unpickler.load_build(self)

    dispatch[pickle.BUILD[0]] = load_build


# torch.load(pickle_module=this module) takes its Unpickler and load.
Unpickler = RestrictedUnpickler


@functools.lru_cache(maxsize=None)
def _restricted_globals() -> Dict[str, Any]:
    return dict(_tensor_globals(), **allowed_globals())


def load(file, **kwargs) -> Any:
    """``pickle.load`` through :class:`RestrictedUnpickler` (torch.load
    calls it for the legacy format's header)."""
    return RestrictedUnpickler(file, **kwargs).load()


def _truthy_env(name: str) -> bool:
    return os.environ.get(name, '0').lower() in ('1', 'y', 'yes', 'true')


def load_with_restricted_unpickler(source, map_location='cpu') -> Any:
    """``torch.load`` of a path or binary file through
    :class:`RestrictedUnpickler`. With ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1``
    torch refuses any ``pickle_module``: then torch's own weights-only
    unpickler loads, with torch's allow-list alone (tensors only)."""
    if _truthy_env('TORCH_FORCE_WEIGHTS_ONLY_LOAD'):
        return torch.load(source, map_location=map_location, weights_only=True)
    return torch.load(source, map_location=map_location, weights_only=False,
                      pickle_module=sys.modules[__name__])


def load_with_torch_unpickler(source, map_location='cpu') -> Any:
    """``torch.load(weights_only=True)`` with :func:`allowed_globals` allowed
    for this load only (torch >= 2.6; torch keeps the list in one global,
    so a load in another thread at the same moment sees it too)."""
    with torch.serialization.safe_globals(_torch_allow_list()):
        return torch.load(source, map_location=map_location,
                          weights_only=True)


def safe_torch_load(source, map_location='cpu') -> Any:
    """Load a checkpoint (path or binary file) under the policy above, with
    the way this torch supports.

    Raises:
        pickle.UnpicklingError: the checkpoint names a global outside the
            allow-list (the message names it), or sets the state of an
            object that is not an allowed type's instance.
    """
    if TORCH_SCOPES_ALLOW_LIST:
        return load_with_torch_unpickler(source, map_location)
    return load_with_restricted_unpickler(source, map_location)
