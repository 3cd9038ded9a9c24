# Loss and mAP curves of a training run as one PNG, drawn by mmdet's own
# tools/analysis_tools/analyze_logs.py (shipped in mmdet/.mim): this wrapper
# only finds the run's scalars.json and puts the loss curves (per iteration)
# and the mAP curves (per epoch) side by side.
#   python tools/analyze_logs.py WORK_DIR_OR_SCALARS_JSON --out curves.png
#   [--loss-keys loss loss_cls ...] [--map-keys bbox_mAP segm_mAP]
import argparse
import glob
import importlib.util
import os.path as osp
import sys
import types


def load_mmdet_analyze_logs():
    import mmdet
    path = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools',
                    'analysis_tools', 'analyze_logs.py')
    if not osp.isfile(path):
        sys.exit(f'error: {path} not found (mmdet installed without its '
                 f'.mim tools?)')
    try:
        import seaborn  # noqa: F401
    except ImportError:  # only sns.set_style is used: plain matplotlib
        sys.modules['seaborn'] = types.SimpleNamespace(
            set_style=lambda *a, **k: None)
    spec = importlib.util.spec_from_file_location('mmdet_analyze_logs', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_scalars(path):
    if path.endswith('.json'):
        return path
    found = sorted(glob.glob(osp.join(path, '*', 'vis_data', 'scalars.json')))
    if not found:
        sys.exit(f'error: no */vis_data/scalars.json under {path!r}; pass '
                 f'the work dir of a run (with LocalVisBackend) or the json')
    return found[-1]  # the latest run


def val_interval(json_log):
    """train_cfg.val_interval of the config mmengine saved next to the run
    (WORK_DIR/<config>.py; json_log is WORK_DIR/<time>/vis_data/...)."""
    from mmengine.config import Config
    work_dir = osp.dirname(osp.dirname(osp.dirname(osp.abspath(json_log))))
    for path in sorted(glob.glob(osp.join(work_dir, '*.py'))):
        try:
            cfg = Config.fromfile(path, import_custom_modules=False)
            return int(cfg.train_cfg.get('val_interval', 1))
        except Exception:  # noqa: BLE001  (not a config: keep looking)
            continue
    return 1


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('run', help='work dir of a run, or its scalars.json')
    parser.add_argument('--out', default='curves.png')
    parser.add_argument('--loss-keys', nargs='+', default=['loss'])
    parser.add_argument('--map-keys', nargs='+',
                        default=['bbox_mAP', 'segm_mAP'])
    parser.add_argument('--eval-interval', default=None,
                        help="the run's val_interval in epochs (default: "
                        "from the config saved in the work dir, else 1)")
    args = parser.parse_args(argv)

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    tool = load_mmdet_analyze_logs()
    json_log = find_scalars(args.run)
    if args.eval_interval is None:
        args.eval_interval = str(val_interval(json_log))
    log_dicts = tool.load_json_logs([json_log])

    def plot(keys, out):
        tool.plot_curve(
            log_dicts,
            argparse.Namespace(
                json_logs=[json_log], keys=keys, legend=keys, title=None,
                backend=None, style='dark', out=out,
                eval_interval=args.eval_interval, start_epoch='1'))

    plt.figure(figsize=(12, 4.5))
    plt.subplot(1, 2, 1)
    plot(args.loss_keys, None)  # plt.show() is a no-op with Agg
    plt.subplot(1, 2, 2)
    plot(args.map_keys, args.out)


if __name__ == '__main__':
    main()
