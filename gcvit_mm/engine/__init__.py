"""Training-loop pieces for mmengine, registered in its root registries (so
configs of any scope, mmdet or mmseg, can name them): hooks, the
``InputCheckRunner`` runner type, and the CPU DDP model wrapper. The input
checks the runner makes are in :mod:`gcvit_mm.engine.checks`."""
from .cpu_distributed import CPUDistributedDataParallel
from .hooks import (AtomicCheckpointHook, GradStatsHook,
                    RequireFullCheckpoint, RunReportHook)
from .runner import InputCheckRunner, UnreadableImageError

__all__ = [
    'AtomicCheckpointHook', 'CPUDistributedDataParallel', 'GradStatsHook',
    'InputCheckRunner', 'RequireFullCheckpoint', 'RunReportHook',
    'UnreadableImageError'
]
