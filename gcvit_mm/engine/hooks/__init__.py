from .atomic_checkpoint_hook import AtomicCheckpointHook
from .grad_stats_hook import GradStatsHook
from .require_full_checkpoint_hook import RequireFullCheckpoint
from .run_report_hook import RunReportHook

__all__ = [
    'AtomicCheckpointHook', 'GradStatsHook', 'RequireFullCheckpoint',
    'RunReportHook'
]
