# Detect and segment one image with a trained detector; boxes and masks
# drawn by mmdet's DetLocalVisualizer.
#   python tools/image_demo.py IMG CONFIG CHECKPOINT --out-file out.png
import argparse
import os.path as osp
import warnings

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
from gcvit_mm.engine.checks import check_checkpoint_file  # noqa: E402
from gcvit_mm.utils import (UserError, one_line,  # noqa: E402
                            report_user_errors)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Draw a detector\'s boxes and masks on an image')
    parser.add_argument('img', help='image file')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out-file', default='result.png',
                        help='where to write the drawing')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument('--score-thr', type=float, default=0.3,
                        help='draw predictions scoring at least this')
    return parser.parse_args(argv)


def read_image(path: str):
    """The image as BGR array; a file OpenCV cannot decode (a text or HTML
    file named .jpg, a truncated download) is a one-line UserError."""
    import mmcv
    img, why = None, 'the file is empty'
    if osp.getsize(path):
        try:
            img = mmcv.imread(path)
            why = 'not an image format OpenCV can decode'
        except Exception as e:  # noqa: BLE001  (any decoder failure)
            why = one_line(e)
    if img is None:
        raise UserError(f'cannot read image {path!r} ({why}); pass a JPEG, '
                        f'PNG, BMP, TIFF or WebP image')
    return img


def main(argv=None):
    args = parse_args(argv)
    with report_user_errors():
        if not osp.isfile(args.img):
            raise UserError(f'image not found: {args.img!r}')
        img = read_image(args.img)
        if not osp.isfile(args.config):
            raise UserError(f'config file not found: {args.config!r}')
        check_checkpoint_file(args.checkpoint, 'checkpoint')

    import mmcv
    from mmdet.apis import inference_detector, init_detector
    from mmdet.registry import VISUALIZERS

    with report_user_errors(f'cannot build the detector from {args.config}',
                            exc_types=(Exception, )):
        # imports the config's custom_imports (gcvit_mm), reverts SyncBN,
        # ignores init_cfg and takes class names from the checkpoint
        model = init_detector(args.config, args.checkpoint,
                              device=args.device)
    result = inference_detector(model, args.img)

    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.dataset_meta = model.dataset_meta
    img = mmcv.imconvert(img, 'bgr', 'rgb')
    visualizer.add_datasample(
        'result', img, data_sample=result, draw_gt=False, show=False,
        wait_time=0, out_file=args.out_file, pred_score_thr=args.score_thr)
    kept = int((result.pred_instances.scores >= args.score_thr).sum())
    print(f'{kept} detections (score >= {args.score_thr}) drawn to '
          f'{args.out_file}')


if __name__ == '__main__':
    main()
