"""Every checkpoint the tools read is loaded safely, whatever the environment
says, and refused in one line when it cannot be used: a pickle payload
(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 set), a checkpoint that does not cover
the model in tools/test.py, a pretrained URL that cannot be downloaded.

The tool runs are subprocesses, three at a time, on the small Mask R-CNN of
detection_utils and the tiny toy set."""
import os
import os.path as osp
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import torch.nn as nn

from detection_utils import run_tool, write_small_config
from gcvit_mm.engine.checks import weights_not_covered

# Also run on the older stacks by CI's compatibility run (pytest -m compat).
pytestmark = pytest.mark.compat

UNREACHABLE = 'http://127.0.0.1:9/x.pth'  # discard port: connection refused


class Payload:
    """Unpickled without safe loading, it creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def pretrained_cfg(checkpoint):
    return (f"dict(_delete_=True, type='Pretrained', "
            f"checkpoint={str(checkpoint)!r})")


# name -> tool arguments; CFG, PRE_CFG, IMG and CKPT are filled in below.
PAYLOAD_RUNS = {
    'test': ['test.py', 'CFG', 'CKPT'],
    'resume': ['train.py', 'CFG', '--resume', 'CKPT'],
    'load_from': ['train.py', 'CFG', '--cfg-options', 'load_from=CKPT'],
    'image_demo': ['image_demo.py', 'IMG', 'CFG', 'CKPT'],
    'convert': ['convert_checkpoint.py', 'CKPT', 'OUT'],
    'init_cfg': ['train.py', 'PRE_CFG'],
}


@pytest.fixture(scope='module')
def runs(tmp_path_factory, tiny_toy_data):
    """All tool runs of this module, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1."""
    tmp = tmp_path_factory.mktemp('ckpt_tools')
    data_root = tiny_toy_data
    cfg = write_small_config(tmp / 'small.py', 'mask_rcnn')
    img = osp.join(data_root, 'toy_coco', 'val', '000000.jpg')
    jobs = {}
    for name, args in PAYLOAD_RUNS.items():
        ckpt, marker = tmp / f'{name}.pth', tmp / f'{name}.MARKER'
        torch.save({'state_dict': {'w': torch.zeros(2)},
                    'meta': Payload(marker)}, ckpt)
        fill = dict(CFG=cfg, IMG=img, CKPT=str(ckpt), OUT=str(tmp / 'o.pth'),
                    PRE_CFG=write_small_config(
                        tmp / f'{name}_pre.py', 'mask_rcnn',
                        init_cfg=pretrained_cfg(ckpt)))
        jobs[name] = [a.replace('CKPT', str(ckpt)) if 'CKPT' in a else
                      fill.get(a, a) for a in args]
        if name == 'image_demo':
            jobs[name] += ['--out-file', str(tmp / 'demo.png')]
    jobs['url'] = ['train.py', write_small_config(
        tmp / 'url.py', 'mask_rcnn', init_cfg=pretrained_cfg(UNREACHABLE))]
    # tools/test.py: a checkpoint with none of the model's keys, and a good
    # one (the model's own state_dict).
    unrelated = tmp / 'unrelated.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1)}}, unrelated)
    jobs['unrelated'] = ['test.py', cfg, str(unrelated)]
    jobs['resume_unrelated'] = ['train.py', cfg, '--resume', str(unrelated)]
    jobs['good'] = ['test.py', cfg, _save_model_checkpoint(cfg, tmp),
                    '--cfg-options', 'test_dataloader.dataset.indices=1']
    for name, args in jobs.items():
        if args[0] in ('train.py', 'test.py'):
            args += ['--work-dir', str(tmp / f'work_{name}')]

    os.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] = '1'  # run_tool's env
    os.environ['TORCH_HOME'] = str(tmp / 'torch_home')
    try:
        with ThreadPoolExecutor(3) as pool:
            futures = {name: pool.submit(run_tool, args, data_root)
                       for name, args in jobs.items()}
            results = {name: f.result() for name, f in futures.items()}
    finally:
        os.environ.pop('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD')
        os.environ.pop('TORCH_HOME')
    return tmp, results


def _save_model_checkpoint(cfg_path, tmp):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    cfg = Config.fromfile(cfg_path)  # imports gcvit_mm (custom_imports)
    init_default_scope('mmdet')
    path = tmp / 'good.pth'
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, path)
    return str(path)


def error_line(result):
    """The single ``error:`` line of a failed run (exit 1, no traceback)."""
    err = result.stderr
    assert result.returncode == 1, (result.stdout + err)[-3000:]
    assert 'Traceback' not in err, err[-3000:]
    lines = [line for line in err.splitlines() if 'error:' in line]
    assert len(lines) == 1 and lines[0].startswith('error: '), err[-3000:]
    return lines[0]


@pytest.mark.parametrize('name', list(PAYLOAD_RUNS))
def test_payload_never_runs_and_the_refusal_names_its_global(runs, name):
    tmp, results = runs
    line = error_line(results[name])
    assert not (tmp / f'{name}.MARKER').exists()
    assert (f'refusing to load {tmp / name}.pth: it holds a Python object '
            f'that safe loading does not allow (posix.system); only tensors'
            ) in line
    assert "Re-save just its state_dict" in line
    assert 'weights_only' not in line


def test_unreachable_pretrained_url_says_how_to_use_a_local_file(runs):
    _, results = runs
    line = error_line(results['url'])
    assert (f'could not download {UNREACHABLE} (Connection refused); '
            f'download it where there is network, then point '
            f'model.backbone.init_cfg.checkpoint at the local file (on the '
            f'command line: --cfg-options model.backbone.init_cfg.checkpoint='
            f'/path/to/file.pth)') in line
    assert 'complete' not in line


def test_test_py_refuses_a_checkpoint_that_misses_model_weights(runs):
    tmp, results = runs
    line = error_line(results['unrelated'])
    assert (f"checkpoint '{tmp / 'unrelated.pth'}' lacks 236 of the model's "
            f"236 weights (e.g. backbone.stem.conv.weight, ") in line
    assert 'is it a checkpoint of this config?' in line
    assert 'coco/bbox_mAP' not in results['unrelated'].stdout
    good = results['good']
    assert good.returncode == 0, good.stderr[-3000:]
    assert 'coco/bbox_mAP' in good.stdout + good.stderr


def test_resume_refuses_a_checkpoint_of_another_model(runs):
    """Resuming continues a run of this model: a checkpoint that does
    not cover it stops before its weights (and optimizer state) load."""
    tmp, results = runs
    line = error_line(results['resume_unrelated'])
    path = tmp / 'unrelated.pth'
    assert line.startswith(
        f"error: cannot resume from checkpoint {path}: checkpoint "
        f"'{path}' lacks 236 of the model's 236 weights (e.g. "
        f'backbone.stem.conv.weight, '), line
    assert 'Epoch(train)' not in results['resume_unrelated'].stdout


def test_coverage_counts_as_mmengine_loads():
    """TTA models load into .module, a DDP checkpoint's ``module.`` is
    stripped, BN's num_batches_tracked does not count."""
    from mmengine.model import BaseTTAModel

    class TTA(BaseTTAModel):

        def merge_preds(self, data_samples_list):
            return data_samples_list

    class Net(nn.Sequential):

        def test_step(self, data):  # what BaseTTAModel asks of its module
            return data

    model = TTA(module=Net(nn.Linear(2, 3), nn.BatchNorm1d(3)))
    state = {f'module.{k}': v for k, v in model.module.state_dict().items()
             if k not in ('0.bias', '1.num_batches_tracked')}
    state['module.1.weight'] = torch.zeros(4)
    assert weights_not_covered(model, {'state_dict': state}) == (
        ['0.bias'], ['1.weight'], 6)


@pytest.mark.parametrize('name, resolve', [
    ('open-mmlab://resnet50_v1c', 'get_external_models'),
    ('mmcls://resnet50', 'get_mmcls_models'),
])
def test_named_model_schemes_download_through_the_safe_loader(
        monkeypatch, name, resolve):
    """mmengine's named-model schemes turn a name into a URL and call their
    module's own load_from_http, not CheckpointLoader's: after ``import
    gcvit_mm`` that URL reaches the safe loader too."""
    import gcvit_mm  # noqa: F401 (installs safe loading)
    import gcvit_mm.utils.safe_loading as safe_loading
    import mmengine.runner.checkpoint as mmengine_checkpoint
    seen = []
    monkeypatch.setattr(
        safe_loading, 'load_checkpoint_file',
        lambda filename, map_location=None: seen.append(filename) or
        {'state_dict': {'w': torch.zeros(1)}})
    mmengine_checkpoint.CheckpointLoader.load_checkpoint(name)
    url = getattr(mmengine_checkpoint, resolve)()[name.split('://')[1]]
    assert url.startswith('https://') and seen == [url]


def test_object_store_checkpoints_load_safely(monkeypatch, tmp_path):
    """s3:// (mmengine's petrel backend) reads the file into memory and used
    plain torch.load on the bytes: with TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 a
    payload ran. After ``import gcvit_mm`` it is refused in one line, and a
    clean checkpoint loads as before."""
    import io

    import gcvit_mm  # noqa: F401 (installs safe loading)
    import gcvit_mm.utils.safe_loading as safe_loading
    from gcvit_mm.checkpoint import CheckpointError
    from mmengine.runner.checkpoint import CheckpointLoader

    def as_bytes(obj):
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        return buffer.getvalue()

    marker = tmp_path / 'MARKER'
    store = {'s3://bucket/payload.pth': as_bytes(
                 {'state_dict': {}, 'meta': Payload(marker)}),
             's3://bucket/clean.pth': as_bytes(
                 {'state_dict': {'w': torch.arange(3.)}})}

    class FakePetrel:  # the real backend needs petrel_client
        def get(self, filename):
            return store[filename]

    monkeypatch.setattr(safe_loading, 'get_file_backend',
                        lambda filename, backend_args: FakePetrel())
    monkeypatch.setenv('TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD', '1')
    with pytest.raises(CheckpointError,
                       match=r'^refusing to load s3://bucket/payload\.pth: it '
                       r'holds a Python object .*\(posix\.system\)'):
        CheckpointLoader.load_checkpoint('s3://bucket/payload.pth')
    assert not marker.exists()
    clean = CheckpointLoader.load_checkpoint('s3://bucket/clean.pth')
    assert torch.equal(clean['state_dict']['w'], torch.arange(3.))
