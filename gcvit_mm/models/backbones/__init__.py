from .gcvit import GCViT

__all__ = ['GCViT']
