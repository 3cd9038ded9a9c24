from .block import GCViTBlock, GCViTStage
from .mbconv import FusedMBConv, SqueezeExcitation
from .reduce_size import ConvStem, ReduceSize
from .token_generator import (GlobalTokenGenerator, imagenet_windows,
                              token_generator_layout)
from .window_attention import (WindowAttention, window_partition,
                               window_reverse)

__all__ = [
    'ConvStem', 'FusedMBConv', 'GCViTBlock', 'GCViTStage',
    'GlobalTokenGenerator', 'ReduceSize', 'SqueezeExcitation',
    'WindowAttention', 'imagenet_windows', 'token_generator_layout', 'window_partition',
    'window_reverse'
]
