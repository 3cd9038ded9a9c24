"""Convert a loaded checkpoint to gcvit_mm's layout, as
``tools/convert_checkpoint.py`` writes it: an ImageNet GC ViT checkpoint (the
paper's or timm's) to a backbone checkpoint for ``init_cfg``, or a whole
detector or segmentor (e.g. one trained with the paper's mmdet 2.19 code) to
one that ``tools/test.py CONFIG CKPT`` evaluates and ``load_from``
fine-tunes."""
from typing import List, Tuple

from .convert import (BACKBONE, convert_model_state_dict,
                      convert_state_dict, is_model_state_dict)
from .load import extract_state_dict


def convert_checkpoint(checkpoint: dict, source: str) -> Tuple[dict, str]:
    """(the converted checkpoint, a one-line summary of what was done).

    A backbone alone becomes ``{'state_dict': ..., 'meta': {'source',
    'format'}}``. A whole model keeps every tensor outside its backbone and
    its ``meta`` (with mmdet 2.x's ``CLASSES``, which mmdet 3.x's
    ``init_detector`` reads), with ``source`` and ``format`` added. Anything
    else at the top level (the optimizer state, ...) is not copied: its
    parameter order is the old model's, so it cannot resume ours; fine-tune
    from the result with ``load_from`` instead.

    Args:
        checkpoint (dict): As ``torch.load`` returned it.
        source (str): Its path or URL, for ``meta`` and the summary.

    Raises:
        ValueError: not a GC ViT checkpoint (see ``detect_format``).
    """
    state_dict = extract_state_dict(checkpoint)
    meta = dict(source=source)
    if is_model_state_dict(state_dict):
        converted, fmt, dropped = convert_model_state_dict(state_dict)
        old_meta = checkpoint.get('meta')
        if isinstance(old_meta, dict):
            meta = dict(old_meta, **meta)
        renamed = sum(k.startswith(BACKBONE) for k in converted)
        what = (f'{fmt} format, a whole model: {renamed} backbone tensors '
                f'in our layout, {len(converted) - renamed} other tensors '
                f'kept as they were')
    else:
        converted, fmt, dropped = convert_state_dict(state_dict)
        what = f'{fmt} format, {len(converted)} tensors'
    meta['format'] = fmt
    not_copied = [] if state_dict is checkpoint else [
        k for k, v in checkpoint.items()
        if v is not state_dict and k != 'meta']
    summary = f'{what}; dropped {_describe(dropped)}'
    if not_copied:
        summary += f'; not copied: {", ".join(not_copied)}'
    return dict(state_dict=converted, meta=meta), summary


def _describe(keys: List[str]) -> str:
    """``3 relative_position_index buffers, head.weight`` for a list of
    dropped keys (the derived buffers counted, not listed)."""
    buffers = [k for k in keys if k.endswith('relative_position_index')]
    others = [k for k in keys if k not in buffers]
    parts = ([f'{len(buffers)} relative_position_index buffers (derived)']
             if buffers else []) + others
    return ', '.join(parts) or 'nothing'
