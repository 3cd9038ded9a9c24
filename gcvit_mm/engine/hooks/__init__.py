from .atomic_checkpoint_hook import AtomicCheckpointHook
from .run_report_hook import RunReportHook

__all__ = ['AtomicCheckpointHook', 'RunReportHook']
