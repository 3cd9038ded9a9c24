"""Training-loop pieces for mmengine: hooks registered in its root HOOKS
registry (so configs of any scope, mmdet or mmseg, can name them)."""
from .hooks import AtomicCheckpointHook, RunReportHook

__all__ = ['AtomicCheckpointHook', 'RunReportHook']
