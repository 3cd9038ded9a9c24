"""At the end of training, show the user what the run learnt: predictions on
a few validation images next to their ground truth, and the loss / metric
curves, each as one PNG in the run's log dir (WORK_DIR/TIMESTAMP)."""
import os.path as osp
import sys
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS
from mmengine.utils import mkdir_or_exist

# Metrics drawn on the right-hand panel, by the last part of their name:
# COCO box / mask mAP (mmdet's CocoMetric logs coco/bbox_mAP, coco/segm_mAP)
# and mIoU (mmseg's IoUMetric, unprefixed). These are the headline numbers;
# the other metrics (mAP_50, mAcc, aAcc, ...) are recorded and stay in the log.
CURVE_METRICS = ('bbox_mAP', 'segm_mAP', 'mIoU')
GRID_COLUMNS = 2
CURVES_FIGSIZE = (11, 4)  # inches, at CURVES_DPI: an 1100x400 PNG
CURVES_DPI = 100


def is_curve_metric(name: str) -> bool:
    return name.split('/')[-1] in CURVE_METRICS


def as_number(value) -> Optional[float]:
    """A loss or metric value as a float; None for what is not one number
    (some evaluators return per-class arrays or strings). Tensors are
    detached: the loss in a train step's outputs may still need grad."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        if value.size != 1:
            return None
        value = value.item()
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def tile(images: Sequence[np.ndarray],
         columns: int = GRID_COLUMNS) -> np.ndarray:
    """(H_i, W_i, 3) uint8 images -> one (rows * H, columns * W, 3) grid,
    row-major, with H, W the largest height and width; each image sits in
    the top-left corner of its cell, the rest is white."""
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


def loaded_class(module: str, name: str) -> tuple:
    """``(cls,)`` when ``module`` is already imported, else ``()``, for an
    isinstance check: a sample can only be an instance of a loaded class, so
    a detection run never imports mmseg (nor a segmentation run mmdet)."""
    loaded = sys.modules.get(module)
    return (getattr(loaded, name), ) if loaded is not None else ()


@HOOKS.register_module()
class RunReportHook(Hook):
    """Write ``predictions.png`` and ``curves.png`` when training ends, and
    log where they are in the run's last lines.

    ``predictions.png``: the first ``num_images`` validation images, each
    drawn by its task's visualizer as ground truth | prediction, tiled two
    per row. The task is that of the model's output: mmdet's
    ``DetDataSample`` (``DetLocalVisualizer``: boxes and masks, predictions
    scored below ``score_thr`` left out) or mmseg's ``SegDataSample``
    (``SegLocalVisualizer``: label maps). Both are drawn on the original
    image, read from ``img_path``: mmdet's and mmseg's ``predict`` return
    predictions rescaled to it, and the val pipelines load the annotations
    after ``Resize``, so the ground truth is in its coordinates too.

    ``curves.png``: the training loss (``outputs[loss_key]`` of every
    iteration) on the left and, on the right, the metrics of every
    evaluation whose name ends with ``bbox_mAP``, ``segm_mAP`` or ``mIoU``
    (:data:`CURVE_METRICS`); both over iterations, so epoch- and
    iteration-based runs read alike. The hook records both series itself
    (``self.losses``: ``(iteration, loss)``; ``self.metrics``: every numeric
    metric, name -> ``[(iteration, value)]``), so it needs no visualization
    backend or log file. A resumed run records from where it resumed.

    Drawing never costs the run: a failure is one warning line, and the
    checkpoints are already saved. Only rank 0 draws. The written files are
    kept in ``self.paths`` (``'predictions'``, ``'curves'``).

    Args:
        num_images (int): Validation images to draw. Default: 4.
        score_thr (float): Detection score below which a prediction is not
            drawn. Default: 0.3.
        out_dir (str, optional): Where the PNGs go. Default: the run's log
            dir, ``runner.log_dir``, next to its log.
        loss_key (str): The training output plotted as the loss.
            Default: ``'loss'``, the total loss of mmdet and mmseg models.
    """

    # Before LoggerHook (BELOW_NORMAL), whose after_run uploads the log when
    # it has an out_dir: the lines naming the PNGs must be in it. The
    # checkpoints are written earlier, in after_train_epoch / after_train.
    priority = 'NORMAL'

    def __init__(self,
                 num_images: int = 4,
                 score_thr: float = 0.3,
                 out_dir: Optional[str] = None,
                 loss_key: str = 'loss') -> None:
        self.num_images = num_images
        self.score_thr = score_thr
        self.out_dir = out_dir
        self.loss_key = loss_key
        self.losses: List[Tuple[int, float]] = []
        self.metrics: Dict[str, List[Tuple[int, float]]] = {}
        self.paths: Dict[str, str] = {}

    # ------------------------------------------------------------ recording
    def after_train_iter(self, runner, batch_idx: int, data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        loss = as_number((outputs or {}).get(self.loss_key))
        if loss is not None:
            # runner.iter counts the iterations done before this one
            self.losses.append((runner.iter + 1, loss))

    def after_val_epoch(self, runner, metrics: Optional[dict] = None) -> None:
        for name, value in (metrics or {}).items():
            number = as_number(value)
            if number is not None:
                self.metrics.setdefault(name, []).append((runner.iter, number))

    # -------------------------------------------------------------- drawing
    def after_run(self, runner) -> None:
        if not self.losses or not is_main_process():
            return  # no training (a val/test run), or not rank 0
        out_dir = self.out_dir or runner.log_dir
        for what, draw in (('predictions', self._draw_predictions),
                           ('curves', self._draw_curves)):
            try:
                mkdir_or_exist(out_dir)  # (a custom out_dir may be missing)
                draw(runner, out_dir)
            except Exception as e:  # noqa: BLE001 a picture never fails a run
                runner.logger.warning(
                    f'Run report: could not draw the {what} '
                    f'({type(e).__name__}: {e}); the checkpoints are saved')

    def _draw_curves(self, runner, out_dir: str) -> None:
        # Figure + Agg canvas, not pyplot: no global backend is changed.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        fig = Figure(figsize=CURVES_FIGSIZE, dpi=CURVES_DPI)
        FigureCanvasAgg(fig)
        loss_ax, metric_ax = fig.subplots(1, 2)
        self._plot_loss(loss_ax)
        curves = {name: points for name, points in sorted(self.metrics.items())
                  if is_curve_metric(name)}
        for name, points in curves.items():
            metric_ax.plot(*zip(*points), marker='o', label=name)
        if curves:
            metric_ax.legend()
        metric_ax.set(xlabel='iteration', title='validation')
        for ax in (loss_ax, metric_ax):  # the same x axis on both panels
            ax.set_xlim(0, self.losses[-1][0])
        fig.tight_layout()
        path = osp.join(out_dir, 'curves.png')
        fig.savefig(path)
        self.paths['curves'] = path
        names = '/'.join(name.split('/')[-1] for name in curves)
        runner.logger.info(f'Loss and {names} curves: {path}' if names else
                           f'Loss curve (no validation metric): {path}')

    def _plot_loss(self, ax) -> None:
        """Raw loss, and its running mean over ~1/40 of the run when that
        smooths anything."""
        iters, losses = zip(*self.losses)
        window = max(len(losses) // 40, 1)
        ax.plot(iters, losses, lw=0.6, alpha=0.4 if window > 1 else 1,
                label=self.loss_key)
        if window > 1:
            mean = np.convolve(losses, np.ones(window) / window, 'valid')
            ax.plot(iters[window - 1:], mean, label=f'mean of {window}')
        ax.set(xlabel='iteration', title='training loss')
        ax.legend()

    def _draw_predictions(self, runner, out_dir: str) -> None:
        import mmcv
        if runner.val_loop is None:
            runner.logger.info('Run report: no validation set, so no '
                               'predictions drawn')
            return
        dataset = runner.val_dataloader.dataset
        samples = self._predict(runner, dataset,
                                min(self.num_images, len(dataset)))
        visualizer, draw_kwargs = self._visualizer(samples[0],
                                                   dataset.metainfo)
        with tempfile.TemporaryDirectory() as tmp:
            drawn = [self._draw_sample(visualizer, sample,
                                       osp.join(tmp, f'{k}.png'), draw_kwargs)
                     for k, sample in enumerate(samples)]
        path = osp.join(out_dir, 'predictions.png')
        mmcv.imwrite(tile(drawn)[..., ::-1], path)  # RGB -> BGR
        self.paths['predictions'] = path
        runner.logger.info(f'Predictions on {len(samples)} val images '
                           f'(ground truth | prediction): {path}')

    @staticmethod
    def _predict(runner, dataset, count: int) -> list:
        """The model's data samples (with predictions) for the first
        ``count`` images, one image per batch: mmseg's preprocessor refuses
        test batches of different image sizes (real ADE20K)."""
        collate = runner.val_dataloader.collate_fn
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return [model.test_step(collate([dataset[i]]))[0]
                        for i in range(count)]
        finally:
            model.train(was_training)

    def _visualizer(self, sample, metainfo: dict) -> tuple:
        """The task's visualizer and its ``add_datasample`` options. A fresh
        instance, not the runner's (whose class and backends are the
        config's); built directly, not by ``get_instance``, it is not
        registered as ManagerMixin's current instance, and its name need not
        be unique."""
        if isinstance(sample, loaded_class('mmdet.structures',
                                           'DetDataSample')):
            from mmdet.visualization import DetLocalVisualizer
            visualizer = DetLocalVisualizer(name='run_report')
            visualizer.dataset_meta = metainfo
            return visualizer, dict(pred_score_thr=self.score_thr)
        if isinstance(sample, loaded_class('mmseg.structures',
                                           'SegDataSample')):
            from mmseg.visualization import SegLocalVisualizer
            visualizer = SegLocalVisualizer(name='run_report')
            # not through __init__: mmseg 1.2.2's passes classes and palette
            # to set_dataset_meta swapped
            visualizer.set_dataset_meta(classes=metainfo.get('classes'),
                                        palette=metainfo.get('palette'))
            return visualizer, {}
        raise TypeError(f'no visualizer for a {type(sample).__name__} (a '
                        'DetDataSample or SegDataSample is expected)')

    @staticmethod
    def _draw_sample(visualizer, sample, out_file: str,
                     draw_kwargs: dict) -> np.ndarray:
        """Ground truth | prediction of ``sample`` on its original image:
        (H, 2 * W, 3) uint8 RGB. Through ``out_file``: mmseg's visualizer,
        unlike mmdet's, does not keep what it drew."""
        import mmcv
        image = mmcv.imread(sample.img_path, channel_order='rgb')
        visualizer.add_datasample(
            osp.basename(sample.img_path), image, data_sample=sample,
            draw_gt=True, draw_pred=True, show=False, out_file=out_file,
            **draw_kwargs)
        return mmcv.imread(out_file, channel_order='rgb')
