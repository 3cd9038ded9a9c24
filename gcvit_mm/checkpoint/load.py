"""Safe loading of GC ViT checkpoints into :class:`GCViT`."""
import argparse
import logging
import os.path as osp
import pickle
from typing import Dict, Optional

import torch
import torch.nn.functional as F

from .convert import convert_state_dict

# The paper's training script saves its argparse options next to the
# weights. Namespace only holds attributes: allowing it runs no code.
_CHECKPOINT_SAFE_GLOBALS = [argparse.Namespace]


def load_checkpoint_file(filename: str) -> dict:
    """``torch.load(weights_only=True)`` a local path or an http(s) URL.

    A checkpoint never runs code: only tensors, containers and the
    allow-listed types above are unpickled.
    """
    safe = torch.serialization.safe_globals(_CHECKPOINT_SAFE_GLOBALS)
    try:
        with safe:
            if filename.startswith(('http://', 'https://')):
                return torch.hub.load_state_dict_from_url(
                    filename, map_location='cpu', weights_only=True)
            if not osp.isfile(filename):
                raise FileNotFoundError(
                    f'GC ViT checkpoint not found: {filename!r}; check the '
                    f'path (in configs: init_cfg.checkpoint, a local path or '
                    f'an http(s) URL)')
            return torch.load(filename, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f'Refusing to load {filename!r} with safe loading: it holds '
            f'objects other than tensors ({str(e).splitlines()[0]}). Re-save '
            f'only its state_dict in a trusted environment.') from None
    except (RuntimeError, EOFError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f'Cannot read checkpoint {filename!r}: {e}. Is the '
                         f'file complete and a torch checkpoint?') from None


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


def load_pretrained(model: torch.nn.Module,
                    filename: str,
                    logger: Optional[logging.Logger] = None) -> None:
    """Load a paper/timm/gcvit_mm checkpoint into ``model`` (a GCViT).

    Raises:
        ValueError: the checkpoint is unreadable, not GC ViT, or of another
            arch (any tensor whose shape differs, bias tables aside).
    """
    logger = logger or logging.getLogger(__name__)
    raw = extract_state_dict(load_checkpoint_file(filename))
    state_dict, fmt, dropped = convert_state_dict(raw)
    model_state = model.state_dict()
    resize_relative_position_tables(state_dict, model_state, logger)
    mismatched = [(k, tuple(v.shape), tuple(model_state[k].shape))
                  for k, v in state_dict.items()
                  if k in model_state and v.shape != model_state[k].shape]
    if mismatched:
        lines = '\n'.join(f'  {k}: checkpoint {a} vs model {b}'
                          for k, a, b in mismatched[:10])
        raise ValueError(
            f'Checkpoint {filename!r} ({fmt} format) does not fit this '
            f'GCViT: {len(mismatched)} tensors differ in shape, e.g.\n{lines}'
            f'\nIs it for another arch? Set `arch` to match the checkpoint.')
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
