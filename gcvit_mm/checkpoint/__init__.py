from .convert import convert_state_dict, detect_format
from .load import (CheckpointError, CheckpointNotFoundError,
                   load_checkpoint_bytes, load_checkpoint_file,
                   load_pretrained, refused_global,
                   resize_relative_position_tables)

__all__ = [
    'CheckpointError', 'CheckpointNotFoundError', 'convert_state_dict',
    'detect_format', 'load_checkpoint_bytes', 'load_checkpoint_file',
    'load_pretrained',
    'refused_global', 'resize_relative_position_tables'
]
