from .build import build_runner, set_work_dir
from .cpu_fallbacks import adapt_to_device, start_cpu_process_group
from .input_check_runner import InputCheckRunner
from .unreadable_images import (ReportingCompose, UnreadableImageError,
                                report_unreadable_images)

__all__ = [
    'InputCheckRunner', 'ReportingCompose', 'UnreadableImageError',
    'adapt_to_device', 'build_runner', 'report_unreadable_images',
    'set_work_dir', 'start_cpu_process_group'
]
