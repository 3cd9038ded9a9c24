"""Building the runner of a config, as mmdet's and mmseg's tools do."""
import os.path as osp
from typing import Optional

from mmengine.registry import RUNNERS

DEFAULT_RUNNER = 'InputCheckRunner'


def set_work_dir(cfg, work_dir: Optional[str], config_path: str) -> None:
    """``cfg.work_dir``: ``work_dir`` (the command line's) if given, else the
    config's own, else ``./work_dirs/<config name>`` (mmdet's rule)."""
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])


def build_runner(cfg):
    """The runner that ``cfg.runner_type`` names, :class:`InputCheckRunner`
    when the config names none (mmdet's tools build mmengine's Runner
    then)."""
    if 'runner_type' not in cfg:
        cfg.runner_type = DEFAULT_RUNNER
    return RUNNERS.build(cfg)
