from .convert import (convert_model_state_dict, convert_state_dict,
                      detect_format, foreign_backbone_format)
from .convert_file import convert_checkpoint
from .load import (CheckpointError, CheckpointNotFoundError,
                   load_checkpoint_bytes, load_checkpoint_file,
                   load_pretrained, refused_global,
                   resize_relative_position_tables)

__all__ = [
    'CheckpointError', 'CheckpointNotFoundError', 'convert_checkpoint',
    'convert_model_state_dict', 'convert_state_dict', 'detect_format',
    'foreign_backbone_format', 'load_checkpoint_bytes',
    'load_checkpoint_file', 'load_pretrained',
    'refused_global', 'resize_relative_position_tables'
]
