"""At the end of training, show the user what the run learnt: predictions on
a few validation images next to their ground truth, and the loss / metric
curves, each as one PNG in the run's log dir."""
import itertools
import os.path as osp
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS

# Metrics drawn on the right-hand panel: COCO box / mask mAP (mmdet's
# CocoMetric logs them as coco/bbox_mAP, coco/segm_mAP) and mIoU (mmseg's
# IoUMetric). The other metrics of a run stay in its log.
CURVE_METRICS = ('bbox_mAP', 'segm_mAP', 'mIoU')


def is_curve_metric(name: str) -> bool:
    return name.split('/')[-1] in CURVE_METRICS


def tile(images: Sequence[np.ndarray], columns: int = 2) -> np.ndarray:
    """(H_i, W_i, 3) uint8 images -> one grid, row-major, each cell padded
    with white to the largest image."""
    h = max(i.shape[0] for i in images)
    w = max(i.shape[1] for i in images)
    rows = -(-len(images) // columns)
    grid = np.full((rows * h, min(columns, len(images)) * w, 3), 255,
                   np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        grid[r * h:r * h + image.shape[0],
             c * w:c * w + image.shape[1]] = image
    return grid


@HOOKS.register_module()
class RunReportHook(Hook):
    """Write ``predictions.png`` and ``curves.png`` to the run's log dir
    (WORK_DIR/TIMESTAMP) when training ends, and log where they are.

    ``predictions.png``: the first ``num_images`` validation images, each
    drawn by the task's own visualizer (mmdet's ``DetLocalVisualizer``:
    boxes and masks; mmseg's ``SegLocalVisualizer``: label maps) as ground
    truth | prediction, tiled two per row. ``curves.png``: the training loss
    per iteration (left) and the box / mask mAP or mIoU of every evaluation
    (right), both over iterations so that epoch- and iteration-based runs
    read alike. The hook records both series itself, so it needs no
    visualization backend or log file.

    Drawing never costs the run: a failure is one warning line, and the
    checkpoints are already saved.

    Args:
        num_images (int): Validation images to draw. Default: 4.
        score_thr (float): Detection score below which predictions are not
            drawn. Default: 0.3.
    """

    priority = 'VERY_LOW'  # after the checkpoint and logger hooks
    _instances = itertools.count()  # visualizers need unique names

    def __init__(self, num_images: int = 4, score_thr: float = 0.3) -> None:
        self.num_images = num_images
        self.score_thr = score_thr
        self.losses: List[Tuple[int, float]] = []
        self.metrics: Dict[str, List[Tuple[int, float]]] = {}
        self.paths: Dict[str, str] = {}

    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        if outputs and 'loss' in outputs:
            self.losses.append((runner.iter + 1, float(outputs['loss'])))

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        for name, value in (metrics or {}).items():
            if is_curve_metric(name):
                self.metrics.setdefault(name, []).append(
                    (runner.iter, float(value)))

    def after_run(self, runner) -> None:
        if not self.losses or not is_main_process():
            return  # a test run, or not rank 0
        for what, draw in (('predictions', self._draw_predictions),
                           ('curves', self._draw_curves)):
            try:
                draw(runner)
            except Exception as e:  # noqa: BLE001  (a picture never fails the run)
                runner.logger.warning(
                    f'Run report: could not draw the {what} '
                    f'({type(e).__name__}: {e}); the checkpoints are saved')

    def _draw_curves(self, runner) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        fig = Figure(figsize=(11, 4), dpi=100)
        FigureCanvasAgg(fig)
        loss_ax, metric_ax = fig.subplots(1, 2)
        iters, losses = zip(*self.losses)
        loss_ax.plot(iters, losses, lw=0.6, alpha=0.4, label='loss')
        window = max(len(losses) // 40, 1)
        smooth = np.convolve(losses, np.ones(window) / window, mode='valid')
        loss_ax.plot(iters[window - 1:], smooth, label=f'mean of {window}')
        loss_ax.set(xlabel='iteration', title='training loss')
        loss_ax.legend()
        for name, points in sorted(self.metrics.items()):
            metric_ax.plot(*zip(*points), marker='o', label=name)
        metric_ax.set(xlabel='iteration', title='validation',
                      xlim=(0, iters[-1]))
        if self.metrics:
            metric_ax.legend()
        fig.tight_layout()
        path = osp.join(runner.log_dir, 'curves.png')
        fig.savefig(path)
        self.paths['curves'] = path
        names = '/'.join(n.split('/')[-1] for n in sorted(self.metrics))
        runner.logger.info(f'Loss and {names or "metric"} curves: {path}')

    def _draw_predictions(self, runner) -> None:
        import mmcv
        dataloader = runner.val_dataloader
        dataset = dataloader.dataset
        count = min(self.num_images, len(dataset))
        batch = dataloader.collate_fn([dataset[i] for i in range(count)])
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        model.eval()
        with torch.no_grad():
            samples = model.test_step(batch)
        visualizer = self._visualizer(samples[0], dataset.metainfo)
        drawn = []
        # Through out_file: mmdet's visualizer also keeps the drawing as its
        # image, mmseg's does not.
        with tempfile.TemporaryDirectory() as tmp:
            for k, sample in enumerate(samples):
                out_file = osp.join(tmp, f'{k}.png')
                visualizer.add_datasample(
                    osp.basename(sample.img_path),
                    mmcv.imread(sample.img_path, channel_order='rgb'),
                    data_sample=sample, draw_gt=True, draw_pred=True,
                    show=False, out_file=out_file,
                    **self._draw_kwargs(sample))
                drawn.append(mmcv.imread(out_file, channel_order='rgb'))
        path = osp.join(runner.log_dir, 'predictions.png')
        mmcv.imwrite(tile(drawn)[..., ::-1], path)  # RGB -> BGR
        self.paths['predictions'] = path
        runner.logger.info(f'Predictions on {count} val images (ground '
                           f'truth | prediction): {path}')

    def _visualizer(self, sample, metainfo: dict):
        """The task's visualizer, a fresh instance (not the runner's, whose
        class and backends belong to the config)."""
        name = f'run_report_{next(self._instances)}'
        if hasattr(sample, 'pred_sem_seg'):
            from mmseg.visualization import SegLocalVisualizer
            visualizer = SegLocalVisualizer(name=name, alpha=0.6)
            visualizer.set_dataset_meta(metainfo['classes'],
                                        metainfo['palette'])
        else:
            from mmdet.visualization import DetLocalVisualizer
            visualizer = DetLocalVisualizer(name=name)
            visualizer.dataset_meta = metainfo
        return visualizer

    def _draw_kwargs(self, sample) -> dict:
        return {} if hasattr(sample, 'pred_sem_seg') else dict(
            pred_score_thr=self.score_thr)
