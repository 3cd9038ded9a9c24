from .convert import convert_state_dict, detect_format
from .load import load_checkpoint_file, load_pretrained, resize_relative_position_tables

__all__ = [
    'convert_state_dict', 'detect_format', 'load_checkpoint_file',
    'load_pretrained', 'resize_relative_position_tables'
]
