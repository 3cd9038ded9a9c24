"""Bad data and a bad environment give one actionable ``error:`` line, never
a traceback (issue 8): broken COCO annotation files, an unreadable image in
the middle of a run, a non-image for tools/image_demo.py, a taken port for
tools/dist_*.sh, and bad GC ViT arguments for get_flops.py and train.py."""
import json
import os.path as osp
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from detection_utils import (REPO, TOOLS, load_tool, run_tool, tool_env,
                             write_small_config)
from gcvit_mm.engine import checks
from gcvit_mm.utils import UserError
from gcvit_mm.utils.ports import free_port


def one_error_line(returncode, stdout, stderr, *needles):
    """Exit 1, exactly one ``error:`` line on stderr, no traceback anywhere;
    the line holds every needle. Returns it."""
    assert returncode == 1, (stdout + stderr)[-3000:]
    assert 'Traceback' not in stdout + stderr, (stdout + stderr)[-3000:]
    errors = [line for line in stderr.splitlines()
              if line.startswith('error: ')]
    assert len(errors) == 1, stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def tool_error(result, *needles):
    return one_error_line(result.returncode, result.stdout, result.stderr,
                          *needles)


def in_process_error(capsys, tool, argv, *needles):
    """Run tools/<tool>.py's main in this process (no interpreter start)."""
    with pytest.raises(SystemExit) as exit_info:
        load_tool(tool).main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return one_error_line(exit_info.value.code, out, err, *needles)


@pytest.fixture
def data(tmp_path, tiny_toy_data, monkeypatch):
    """A copy of the tiny toy set that the test may break (the toy configs
    read $GCVIT_MM_DATA); LOCAL_RANK as a single-process run has it."""
    root = tmp_path / 'data'
    shutil.copytree(osp.join(tiny_toy_data, 'toy_coco'), root / 'toy_coco')
    monkeypatch.setenv('GCVIT_MM_DATA', str(root))
    monkeypatch.setenv('LOCAL_RANK', '0')
    return root


def _coco(root, split='train'):
    path = root / 'toy_coco' / 'annotations' / f'instances_{split}.json'
    return path, json.loads(path.read_text())


# ---------------------------------------------------------- 1. annotations
def _empty(coco, text):
    return ''


def _truncated(coco, text):
    return text[:len(text) // 2]


def _no_images_key(coco, text):
    return json.dumps({k: v for k, v in coco.items() if k != 'images'})


def _no_images(coco, text):
    return json.dumps(dict(coco, images=[], annotations=[]))


def _other_category_names(coco, text):
    cats = [dict(c, name=c['name'].upper()) for c in coco['categories']]
    return json.dumps(dict(coco, categories=cats))


def _only_unknown_category_annotated(coco, text):
    # 'circle' renamed and the only category with annotations: the other
    # classes match categories, but no image keeps an annotation of them.
    cats = [dict(c, name='blob') if c['id'] == 1 else c
            for c in coco['categories']]
    anns = [a for a in coco['annotations'] if a['category_id'] == 1]
    return json.dumps(dict(coco, categories=cats, annotations=anns))


@pytest.mark.parametrize('corrupt, needles', [
    (_empty, ['is empty', 're-download']),
    (_truncated, ['is not valid JSON', 'truncated download?']),
    (_no_images_key, ["has no 'images' list", 'COCO-format JSON']),
    (_no_images, ['lists no images']),
    (_other_category_names, [
        'none of the 3 classes of train_dataloader.dataset',
        'CIRCLE, SQUARE, TRIANGLE',
        'train_dataloader.dataset.metainfo=dict(classes=']),
    (_only_unknown_category_annotated, [
        'no image of', 'filter_empty_gt=True leaves no training image']),
])
def test_bad_train_annotation_file(tmp_path, data, capsys, corrupt, needles):
    path, coco = _coco(data)
    path.write_text(corrupt(coco, path.read_text()))
    cfg = write_small_config(tmp_path / 'c.py', 'mask_rcnn')
    in_process_error(capsys, 'train', [cfg, '--work-dir', tmp_path / 'w'],
                     str(path), 'train_dataloader.dataset', *needles)


def test_no_images_from_the_command_line(tmp_path, data):
    """The issue's case end to end: was "ValueError: need at least one array
    to concatenate" after a 800-line log."""
    path, coco = _coco(data)
    path.write_text(_no_images(coco, ''))
    cfg = write_small_config(tmp_path / 'c.py', 'mask_rcnn')
    result = run_tool(['train.py', cfg, '--work-dir', tmp_path / 'w'],
                      str(data))
    tool_error(result, f"annotation file '{path}' "
               f'(train_dataloader.dataset.ann_file) lists no images')
    assert len((result.stdout + result.stderr).splitlines()) <= 3


def test_bad_annotation_file_under_torchrun_is_one_error_line(
        tmp_path, data, monkeypatch):
    """Two CPU processes: the first process of the node finds the broken
    file before any rank joins the process group, so the other rank is
    stopped by torchrun instead of printing a second, misleading error, and
    tools/torchrun.py ends with one line instead of torchrun's traceback."""
    path, coco = _coco(data)
    path.write_text(_no_images(coco, ''))
    cfg = write_small_config(tmp_path / 'c.py', 'mask_rcnn')
    monkeypatch.setenv('PORT', str(free_port()))
    result = run_tool(['dist_train.sh', cfg, 2, '--work-dir', tmp_path / 'w'],
                      str(data))
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines()
              if line.startswith('error: ')]
    assert errors == [
        f"error: annotation file '{path}' (train_dataloader.dataset.ann_file)"
        ' lists no images; regenerate or re-download it, or set '
        'train_dataloader.dataset.ann_file to a COCO-format JSON file'
    ], result.stderr[-3000:]
    # torchrun's own ChildFailedError traceback is one closing line instead
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert result.stderr.splitlines()[-1] == (
        f'torchrun: {TOOLS}/train.py failed first on rank 0 (exit code 1); '
        'its output above says why. 2 process(es) failed or were stopped.')


def test_bad_evaluator_annotation_file_for_test(tmp_path, data, capsys):
    path, coco = _coco(data, 'val')
    bad = tmp_path / 'no_categories.json'
    bad.write_text(json.dumps({k: v for k, v in coco.items()
                               if k != 'categories'}))
    cfg = write_small_config(tmp_path / 'c.py', 'mask_rcnn')
    in_process_error(
        capsys, 'test', [cfg, tmp_path / 'none.pth', '--work-dir',
                         tmp_path / 'w', '--cfg-options',
                         f'test_evaluator.ann_file={bad}'],
        str(bad), 'test_evaluator.ann_file', "has no 'categories' list")


def test_each_annotation_file_is_parsed_once_per_node(tmp_path, data,
                                                      monkeypatch):
    from mmengine.config import Config
    cfg = Config.fromfile(write_small_config(tmp_path / 'c.py', 'mask_rcnn'))
    cfg.launcher = 'pytorch'
    loads = []
    real_load = json.load
    monkeypatch.setattr(checks.coco_annotations.json, 'load',
                        lambda f: loads.append(f.name) or real_load(f))
    checks.check_data_of_run(cfg, 'train')
    # the val dataset and the evaluator share one file; the runner's check
    # of the same files (in the same process) parses nothing again
    checks.check_data(cfg, ['train_dataloader'])
    checks.check_data(cfg, ['val_dataloader', 'val_evaluator'])
    assert sorted(osp.basename(p) for p in loads) == [
        'instances_train.json', 'instances_val.json']
    path, _ = _coco(data)
    path.write_text('')
    monkeypatch.setenv('LOCAL_RANK', '1')  # the node's other processes
    checks.check_data_of_run(cfg, 'train')
    monkeypatch.setenv('LOCAL_RANK', '0')
    with pytest.raises(UserError, match='is empty'):  # a new file version
        checks.check_data_of_run(cfg, 'train')


# -------------------------------------------------------- 2. unreadable image
def test_unreadable_image_mid_run_names_it_and_keeps_checkpoints(tmp_path,
                                                                  data):
    bad_train = data / 'toy_coco' / 'train' / '000002.jpg'
    bad_val = data / 'toy_coco' / 'val' / '000002.jpg'
    for bad in (bad_train, bad_val):
        bad.write_text('not an image')
    ann = data / 'toy_coco' / 'annotations' / 'instances_{}.json'
    # Iteration-based (as mmseg's configs): its loop starts the DataLoader
    # workers when it is built, before any hook runs.
    cfg = write_small_config(
        tmp_path / 'c.py', 'mask_rcnn',
        train_cfg="dict(_delete_=True, type='IterBasedTrainLoop', "
        'max_iters=2, val_interval=100)',
        param_scheduler='[]',
        default_hooks='dict(checkpoint=dict(interval=1, by_epoch=False))')
    work = tmp_path / 'work'
    # Images 0, 1 in iteration 1 (then its checkpoint), 2, 3 in iteration 2,
    # read by a DataLoader worker.
    result = run_tool([
        'train.py', cfg, '--work-dir', work, '--cfg-options',
        'train_dataloader.dataset.indices=4',
        'train_dataloader.sampler.shuffle=False',
        'train_dataloader.num_workers=1'
    ], str(data))
    tool_error(result, 'error: training stopped: cannot read image '
               f"'{bad_train}' of train_dataloader.dataset",
               f"""remove it from '{str(ann).format('train')}'""",
               'replace it with a valid image, then resume from the last '
               'checkpoint (on the command line: --cfg-options resume=True)')
    assert (work / 'iter_1.pth').exists()
    # A val image in the main process (num_workers=0) of tools/test.py.
    result = run_tool(['test.py', cfg, work / 'iter_1.pth', '--work-dir',
                       work], str(data))
    tool_error(result, 'error: testing stopped: cannot read image '
               f"'{bad_val}' of test_dataloader.dataset",
               f"""remove it from '{str(ann).format('val')}'""")


# ------------------------------------------------------------ 3. image_demo
def test_image_demo_on_a_file_that_is_not_an_image(tmp_path, tiny_toy_data,
                                                   capsys):
    cfg = write_small_config(tmp_path / 'c.py', 'mask_rcnn')
    ckpt = tmp_path / 'c.pth'
    torch.save({'state_dict': {}}, ckpt)
    text = tmp_path / 'x.jpg'
    text.write_text('hello')
    result = run_tool(['image_demo.py', text, cfg, ckpt, '--out-file',
                       tmp_path / 'o.png'], tiny_toy_data)
    tool_error(result, f"cannot read image '{text}' (not an image format "
               'OpenCV can decode); pass a JPEG, PNG')
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    in_process_error(capsys, 'image_demo', [empty, cfg, ckpt],
                     f"cannot read image '{empty}' (the file is empty)")


# ------------------------------------------------------------- 4. taken port
@pytest.mark.parametrize('script, args', [
    ('dist_train.sh', ['2']), ('dist_test.sh', ['none.pth', '2'])])
def test_dist_scripts_on_a_taken_port(tmp_path, tiny_toy_data, monkeypatch,
                                      script, args):
    cfg = write_small_config(tmp_path / 'c.py', 'mask_rcnn')
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setenv('PORT', str(port))
        result = run_tool([script, cfg] + args, tiny_toy_data, timeout=120)
    tool_error(result, f'error: PORT={port} is already in use on this '
               'machine', 'set a free port, e.g. PORT=', script)
    assert result.stdout == ''


# ------------------------------------------------------ 5. GC ViT arguments
def test_get_flops_with_a_bad_arch(tiny_toy_data):
    cfg = osp.join(REPO, 'configs/mask_rcnn/gcvit_xxt_shapes.py')
    result = run_tool(['get_flops.py', cfg, '--shape', 128, 128,
                       '--cfg-options', 'model.backbone.arch=tinyy'],
                      tiny_toy_data)
    tool_error(result, 'error: bad GCViT backbone config (model.backbone): '
               "Unknown GCViT arch 'tinyy'", 'xxtiny')


def test_train_with_a_bad_arch_prints_one_line(tmp_path):
    """Not after the Runner's 400-line environment report."""
    cfg = write_small_config(tmp_path / 'c.py', 'mask_rcnn')
    env = tool_env('')
    del env['GCVIT_MM_DATA']  # mmengine logs its use; not needed here
    result = subprocess.run(
        [sys.executable, osp.join(TOOLS, 'train.py'), cfg, '--work-dir',
         str(tmp_path / 'w'), '--cfg-options', 'model.backbone.arch=tinyy'],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    line = tool_error(result, "Unknown GCViT arch 'tinyy'")
    assert (result.stdout + result.stderr).strip() == line


@pytest.mark.parametrize('override, needle', [
    (dict(arch='tinyy'), "Unknown GCViT arch 'tinyy'"),
    (dict(arch=dict(dim=32)), 'Custom GCViT arch needs exactly the keys'),
    (dict(window_size=(7, 7)), 'window_size must be a positive int or 4'),
    (dict(out_indices=(0, 4)), 'out_indices must be distinct stage indices'),
    (dict(frozen_stages=5), 'frozen_stages must be in [-1, 4]'),
    (dict(windw_size=7), "unexpected keyword argument 'windw_size'"),
])
def test_every_gcvit_config_is_checked_before_building(override, needle):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(osp.join(REPO,
                                   'configs/upernet/gcvit_t_ade20k.py'))
    init_default_scope('mmseg')
    checks.check_backbones(cfg)  # the config as shipped is fine
    cfg.model.backbone.update(override)
    with pytest.raises(UserError) as info:
        checks.check_backbones(cfg)
    assert str(info.value).startswith(
        'bad GCViT backbone config (model.backbone): ')
    assert needle in str(info.value)


# ------------------------------------------------------------- 6. reporter
def test_reporter_writes_one_line_and_the_command_line_form(capsys,
                                                            monkeypatch):
    from gcvit_mm.utils import report_user_errors
    monkeypatch.delenv('GCVIT_MM_TRACEBACK', raising=False)
    with pytest.raises(SystemExit) as info:
        with report_user_errors('training stopped'):
            raise UserError('point load_from at the file',
                            settings={'load_from': '/path/to.pth',
                                      'resume': 'True'})
    assert info.value.code == 1
    assert capsys.readouterr().err == (
        'error: training stopped: point load_from at the file (on the '
        'command line: --cfg-options load_from=/path/to.pth resume=True)\n')
    # Other errors keep their traceback, unless the caller says they are
    # the input's; then the line says how to see the traceback.
    with pytest.raises(KeyError):
        with report_user_errors():
            raise KeyError('x')
    with pytest.raises(SystemExit):
        with report_user_errors('cannot build', exc_types=(KeyError, )):
            raise KeyError('x')
    assert capsys.readouterr().err == (
        "error: cannot build: 'x' (set GCVIT_MM_TRACEBACK=1 for the "
        'traceback)\n')
    monkeypatch.setenv('GCVIT_MM_TRACEBACK', '1')
    with pytest.raises(UserError):
        with report_user_errors():
            raise UserError('x')
