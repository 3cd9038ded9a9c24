"""Safe loading of GC ViT checkpoints into :class:`GCViT`, and the one safe
``torch.load`` behind every checkpoint a gcvit_mm run reads (``init_cfg``,
and mmengine's ``load_from``/``--resume`` through
:mod:`gcvit_mm.utils.safe_loading`); what it allows is
:mod:`gcvit_mm.checkpoint.safe_unpickler`'s policy."""
import http.client
import io
import logging
import os
import os.path as osp
import pickle
import re
import sys
import urllib.error
from collections import defaultdict
from typing import Dict, List, Optional
from urllib.parse import urlparse

import torch
import torch.nn.functional as F

from .convert import convert_state_dict
from .safe_unpickler import safe_torch_load

# How torch's weights-only unpickler and gcvit_mm's (safe_unpickler.py) name
# what they refused; the first match is reported.
_REFUSED_GLOBAL_PATTERNS = [
    re.compile(p) for p in (
        r'GLOBAL (\S+) was not an allowed global',  # not allow-listed
        r'unsupported GLOBAL (\S+) whose module',  # os, sys, posix, nt
        r'refusing (getattr\(.*?\)) while loading',  # HistoryBuffer methods
        r'refusing to set the (state of \S+) while loading',  # BUILD
        r'unrecognized function (<[^>]*>)',  # REDUCE of a non-allowed call
        r"allowlisted via `add_safe_globals` but got <class '([^']+)'>",
    )
]

# The config setting that names a backbone's pretrained weights.
PRETRAINED_SETTING = 'model.backbone.init_cfg.checkpoint'


class CheckpointError(ValueError):
    """A checkpoint that cannot be used. The message is one line naming the
    file, the cause and the fix; tools print it as ``error: ...``.
    ``settings``: config keys whose value would fix it, each with an
    example value; a reporter adds their command-line form."""

    settings: Dict[str, str] = {}


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A local checkpoint path that does not exist."""


def refused_global(message: str) -> Optional[str]:
    """The name of the global a safe-loading error refused (e.g.
    ``posix.system``), or None when the message names none."""
    for pattern in _REFUSED_GLOBAL_PATTERNS:
        match = pattern.search(message)
        if match:
            return match.group(1)
    return None


def _refusal(filename: str, exc: Exception) -> CheckpointError:
    # torch's own message advises `weights_only=False`: never passed on.
    name = refused_global(str(exc))
    what = f' ({name})' if name else ''
    return CheckpointError(
        f'refusing to load {filename}: it holds a Python object that safe '
        f'loading does not allow{what}; only tensors, containers and numbers '
        f'are loaded, so that a checkpoint cannot run code. Re-save just its '
        f"state_dict where you trust the file: torch.save({{'state_dict': "
        f"ckpt['state_dict']}}, 'clean.pth')")


def _download_reason(exc: Exception) -> str:
    """A few words on why a download failed ('Connection refused',
    'HTTP 404 Not Found', 'timed out')."""
    if isinstance(exc, urllib.error.HTTPError):
        return f'HTTP {exc.code} {exc.reason}'
    reason = getattr(exc, 'reason', exc)
    return (getattr(reason, 'strerror', None) or str(reason)
            or type(reason).__name__)


def _download(url: str, setting: Optional[str]) -> str:
    """The local copy of ``url`` in torch's hub cache (where
    ``torch.hub.load_state_dict_from_url`` keeps it), downloaded if absent."""
    cached = osp.join(torch.hub.get_dir(), 'checkpoints',
                      osp.basename(urlparse(url).path) or 'checkpoint.pth')
    if osp.isfile(cached):
        return cached
    os.makedirs(osp.dirname(cached), exist_ok=True)
    sys.stderr.write(f'Downloading: "{url}" to {cached}\n')
    try:
        torch.hub.download_url_to_file(url, cached,
                                       progress=sys.stderr.isatty())
    except (OSError, http.client.HTTPException) as e:
        fix = (f'point {setting} at the local file' if setting else
               'pass its local path instead of the URL')
        error = CheckpointError(
            f'could not download {url} ({_download_reason(e)}); download it '
            f'where there is network, then {fix}')
        error.settings = {setting: '/path/to/file.pth'} if setting else {}
        raise error from None
    return cached


def load_checkpoint_file(filename: str,
                         map_location='cpu',
                         setting: Optional[str] = None) -> dict:
    """Load a local path or an http(s) URL safely, on every supported torch:
    only tensors, containers and the allow-listed types of
    :mod:`gcvit_mm.checkpoint.safe_unpickler` are unpickled, whatever the
    environment says (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``). ``setting``
    names the config key that holds ``filename``, for the error messages.

    Raises:
        CheckpointError: one line: not found, not downloadable, unreadable,
            or refused by safe loading (naming the refused global).
    """
    if filename.startswith(('http://', 'https://')):
        path = _download(filename, setting)
    else:
        path = osp.expanduser(filename)
    if not osp.isfile(path):
        where = f' (set by {setting})' if setting else ''
        raise CheckpointNotFoundError(
            f'checkpoint not found: {filename!r}{where}; check the path (a '
            f'local path or an http(s) URL)')
    return _safe_load(path, filename, map_location)


def load_checkpoint_bytes(data: bytes, filename: str,
                          map_location='cpu') -> dict:
    """:func:`load_checkpoint_file` for a checkpoint already read into
    memory (what an object-store backend returns); ``filename`` names it in
    the errors."""
    with io.BytesIO(data) as buffer:
        return _safe_load(buffer, filename, map_location)


def _safe_load(source, filename: str, map_location) -> dict:
    """:func:`safe_torch_load` of ``source`` (a path or a binary file
    object); failures as one-line :class:`CheckpointError`."""
    try:
        return safe_torch_load(source, map_location)
    except pickle.UnpicklingError as e:
        raise _refusal(filename, e) from None
    # a damaged pickle fails in pickle's own unpickler with these too
    except (RuntimeError, EOFError, OSError, KeyError, IndexError,
            ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else \
            type(e).__name__
        raise CheckpointError(
            f'Cannot read checkpoint {filename!r}: {first}. Is the file '
            f'complete and a torch checkpoint?') from None


def extract_state_dict(checkpoint: dict) -> Dict[str, torch.Tensor]:
    """The weights of a checkpoint dict saved by torch, timm, or mmengine."""
    if not isinstance(checkpoint, dict):
        raise ValueError(f'Expected a checkpoint dict, got {type(checkpoint)}')
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint.get(key), dict):
            return checkpoint[key]
    return checkpoint


def resize_relative_position_tables(state_dict: Dict[str, torch.Tensor],
                                    model_state: Dict[str, torch.Tensor],
                                    logger: logging.Logger) -> None:
    """Bicubically resize ((2w-1)^2, heads) bias tables to the model's window
    (e.g. 13x13 -> 47x47 for window 7 -> 24), in place."""
    for key, table in state_dict.items():
        if not key.endswith('relative_position_bias_table'):
            continue
        target = model_state.get(key)
        if target is None or target.shape == table.shape:
            continue
        (len_src, heads), (len_dst, heads_dst) = table.shape, target.shape
        side_src, side_dst = int(len_src**0.5), int(len_dst**0.5)
        if heads != heads_dst or side_src**2 != len_src:
            continue  # left for the shape check to report
        grid = table.T.reshape(1, heads, side_src, side_src).float()
        grid = F.interpolate(grid, size=(side_dst, side_dst), mode='bicubic')
        state_dict[key] = grid.reshape(heads, len_dst).T.to(table.dtype)
        logger.debug(f'resized {key}: {side_src}x{side_src} -> '
                     f'{side_dst}x{side_dst}')


# Tensors a GC ViT checkpoint never has: the output norms that dense models
# add (``norm{i}`` for each out index); ImageNet weights end in one final
# norm, which the conversion drops.
_NEW_IN_DENSE_MODELS = re.compile(r'^norm\d+\.')
_BLOCK = re.compile(r'^stages\.(\d+)\.blocks\.(\d+)\.')


def _depths(keys) -> tuple:
    """Blocks per stage in a state dict of our layout."""
    depth = defaultdict(int)
    for key in keys:
        match = _BLOCK.match(key)
        if match:
            stage, block = int(match.group(1)), int(match.group(2))
            depth[stage] = max(depth[stage], block + 1)
    return tuple(depth[i] for i in range(max(depth, default=-1) + 1))


def _summarize(keys: List[str], limit: int = 5) -> str:
    """``stages.1.blocks.2.*, stem.conv.weight, ... (+3 more)``: keys grouped
    by block, the first ``limit`` groups."""
    groups = list(dict.fromkeys(
        f'{m.group(0)}*' if m else k for k, m in
        ((k, _BLOCK.match(k)) for k in keys)))
    more = f' (+{len(groups) - limit} more)' if len(groups) > limit else ''
    return ', '.join(groups[:limit]) + more


def _arch_mismatch(filename: str, fmt: str, model: torch.nn.Module,
                   state_dict: Dict[str, torch.Tensor], missing: List[str],
                   unexpected: List[str]) -> CheckpointError:
    expected = [k for k in model.state_dict()
                if not _NEW_IN_DENSE_MODELS.match(k)]
    parts = []
    if missing:
        parts.append(f'lacks {len(missing)} of the {len(expected)} tensors '
                     f'of this GCViT ({_summarize(missing)})')
    if unexpected:
        parts.append(f'has {len(unexpected)} tensors this GCViT lacks '
                     f'({_summarize(unexpected)})')
    ckpt_depths, model_depths = _depths(state_dict), _depths(expected)
    if ckpt_depths != model_depths:
        dim = getattr(model, 'arch_settings', {}).get('dim')
        names = [name for name, arch in getattr(model, 'arch_zoo', {}).items()
                 if tuple(arch['depths']) == ckpt_depths
                 and arch['dim'] == dim]
        known = f", as arch '{names[0]}'" if names else ''
        cause = (f'it is for another arch: its depths are {ckpt_depths}'
                 f'{known}, this model\'s {model_depths}. Set `arch` to '
                 f'match the checkpoint')
    else:
        cause = ('is it a complete GC ViT checkpoint of this arch? Set '
                 '`arch` to match the checkpoint')
    return CheckpointError(
        f'Checkpoint {filename!r} ({fmt} format) {" and ".join(parts)}: '
        f'{cause}, or load it partially on purpose with init_cfg=dict('
        f"type='Pretrained', checkpoint=..., strict=False)")


def load_pretrained(model: torch.nn.Module,
                    filename: str,
                    logger: Optional[logging.Logger] = None,
                    strict: bool = True) -> None:
    """Load a paper/timm/gcvit_mm checkpoint into ``model`` (a GCViT).

    Args:
        strict (bool): Whether every tensor of the backbone must come from
            the checkpoint and every tensor of the checkpoint must fit the
            backbone (as mmengine's ``load_checkpoint(strict=...)``), the new
            output norms ``norm{i}`` aside. False: a partial load, the
            missing and unexpected keys logged as warnings.

    Raises:
        CheckpointError (a ValueError): the checkpoint is not found, not
            downloadable, unreadable, refused by safe loading, not GC ViT,
            or of another arch (any tensor whose shape differs, bias tables
            aside; with ``strict``, any tensor missing or unexpected).
    """
    logger = logger or logging.getLogger(__name__)
    if not isinstance(strict, bool):
        raise CheckpointError(f'init_cfg strict must be True or False, got '
                              f'{strict!r}')
    checkpoint = load_checkpoint_file(filename, setting=PRETRAINED_SETTING)
    try:
        state_dict, fmt, dropped = convert_state_dict(
            extract_state_dict(checkpoint))
    except ValueError as e:
        raise CheckpointError(f'{filename}: {e}') from None
    model_state = model.state_dict()
    resize_relative_position_tables(state_dict, model_state, logger)
    mismatched = [(k, tuple(v.shape), tuple(model_state[k].shape))
                  for k, v in state_dict.items()
                  if k in model_state and v.shape != model_state[k].shape]
    if mismatched:
        lines = '; '.join(f'{k}: checkpoint {a} vs model {b}'
                          for k, a, b in mismatched[:3])
        raise CheckpointError(
            f'Checkpoint {filename!r} ({fmt} format) does not fit this '
            f'GCViT: {len(mismatched)} tensors differ in shape, e.g. {lines}.'
            f' Is it for another arch? Set `arch` to match the checkpoint.')
    missing = [k for k in model_state
               if k not in state_dict and not _NEW_IN_DENSE_MODELS.match(k)]
    unexpected = [k for k in state_dict if k not in model_state]
    if strict and (missing or unexpected):
        raise _arch_mismatch(filename, fmt, model, state_dict, missing,
                             unexpected)
    result = model.load_state_dict(state_dict, strict=False)
    logger.info(f'Loaded {fmt}-format GC ViT checkpoint {filename}: '
                f'{len(state_dict) - len(result.unexpected_keys)} tensors')
    if dropped:
        logger.info(f'dropped classification-only/derived keys: {dropped}')
    if result.missing_keys:
        logger.warning(f'missing keys (left at their initial values): '
                       f'{result.missing_keys}')
    if result.unexpected_keys:
        logger.warning(f'unexpected keys (ignored): {result.unexpected_keys}')
