"""Helpers for the detection tests: a tiny toy dataset, small-model configs
that inherit the real toy configs, and a hook that records what the runner
did."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import textwrap

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools')
TOY_CONFIGS = {
    'mask_rcnn': osp.join(REPO, 'configs/mask_rcnn/gcvit_xxt_shapes.py'),
    'cascade': osp.join(REPO, 'configs/cascade/gcvit_xxt_shapes.py'),
}
# 8 train / 4 val images of the toy generator, 96 px.
TINY_DATA = dict(num_train=8, num_val=4, img_size=96, min_side=24,
                 max_side=48, seed=1)


def load_tool(name: str):
    """tools/<name>.py as a module, to call its ``main(argv)`` in-process
    (no interpreter start, the returned runner can be inspected)."""
    spec = importlib.util.spec_from_file_location(
        f'gcvit_mm_tools_{name}', osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tiny_toy_data(root: str) -> str:
    """Generate the tiny toy set at ``<root>/toy_coco`` (the layout that
    ``$GCVIT_MM_DATA`` points the toy configs at)."""
    from gcvit_mm.datasets.toy_coco import ensure_toy_coco
    return ensure_toy_coco(osp.join(root, 'toy_coco'), **TINY_DATA)


def write_small_config(path: str, head: str, init_cfg: str = 'None',
                       **extra) -> str:
    """A config inheriting the toy config of ``head`` with a small GC ViT
    (dim 32, two blocks per stage: local then global)
    and cheap settings; ``extra`` lines are appended verbatim."""
    lines = '\n'.join(f'{k} = {v}' for k, v in extra.items())
    path = str(path)
    with open(path, 'w') as f:
        f.write(textwrap.dedent(f'''\
            _base_ = {TOY_CONFIGS[head]!r}
            model = dict(
                backbone=dict(
                    arch=dict(_delete_=True, dim=32, depths=(2, 2, 2, 2),
                              num_heads=(1, 2, 4, 8), mlp_ratio=2.,
                              layer_scale=None),
                    drop_path_rate=0.,
                    init_cfg={init_cfg}),
                neck=dict(in_channels=[32, 64, 128, 256]),
                test_cfg=dict(rcnn=dict(score_thr=0.)))
            train_dataloader = dict(batch_size=2, num_workers=0,
                                    persistent_workers=False)
            val_dataloader = dict(batch_size=2, num_workers=0,
                                  persistent_workers=False)
            test_dataloader = val_dataloader
            default_hooks = dict(logger=dict(interval=1),
                                 visualization=dict(draw=False))
            log_processor = dict(window_size=1)
            env_cfg = dict(mp_cfg=dict(opencv_num_threads=1))
            ''') + lines + '\n')
    return path


def tool_env(data_root: str) -> dict:
    env = dict(os.environ)
    env['GCVIT_MM_DATA'] = data_root
    env['PYTHONPATH'] = REPO + os.pathsep + env.get('PYTHONPATH', '')
    env.setdefault('OMP_NUM_THREADS', '1')
    env.pop('GCVIT_MM_TRACEBACK', None)
    return env


def run_tool(args, data_root: str, timeout: int = 600, **kwargs):
    """Run ``python tools/<args[0]> ...`` (or a shell script via bash)."""
    script = osp.join(TOOLS, args[0])
    cmd = ['bash', script] if script.endswith('.sh') else [
        sys.executable, script]
    return subprocess.run(cmd + [str(a) for a in args[1:]], cwd=REPO,
                          env=tool_env(data_root), capture_output=True,
                          text=True, timeout=timeout, **kwargs)


@HOOKS.register_module(force=True)
class RecordRunHook(Hook):
    """Records losses per iteration, validation metrics, and the state the
    runner starts training from (after any resume)."""

    priority = 'VERY_LOW'
    last = None

    def __init__(self):
        self.losses, self.metrics = [], []
        self.start_iter = self.start_optim_state = None
        RecordRunHook.last = self

    def before_train(self, runner):
        import copy
        self.start_iter = runner.iter
        self.start_epoch = runner.epoch
        self.start_optim_state = copy.deepcopy(
            runner.optim_wrapper.state_dict())

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.losses.append({k: float(v) for k, v in outputs.items()
                            if k.startswith('loss')})

    def after_val_epoch(self, runner, metrics=None):
        self.metrics.append(dict(metrics or {}))
