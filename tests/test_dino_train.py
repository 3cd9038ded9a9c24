"""Each DINO model trains through tools/train.py on CPU (deformable attention
through mmcv's PyTorch fallback) and is evaluated with pycocotools."""
import math
import os.path as osp
import textwrap

import pytest

from detection_utils import REPO, RecordRunHook, load_tool

TOY = osp.join(REPO, 'configs/_base_/datasets/toy_shapes.py')
# One config per distinct model (the 36-epoch configs differ only in the
# schedule), ImageNet init off: the weights are not reachable here.
COCO_MODELS = ['gcvit_t_4scale_12e_coco', 'gcvit_s_4scale_12e_coco',
               'gcvit_b_4scale_12e_coco', 'gcvit_l21k_4scale_36e_coco']


@pytest.fixture
def fallback_calls(monkeypatch):
    """Counts calls of mmcv's PyTorch deformable attention (the CUDA kernel
    is the other branch of MultiScaleDeformableAttention.forward)."""
    import mmcv.ops.multi_scale_deform_attn as msda
    calls = []
    original = msda.multi_scale_deformable_attn_pytorch

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(msda, 'multi_scale_deformable_attn_pytorch', counted)
    return calls


def toy_run_config(tmp_path, name):
    """configs/dino/<name>.py on the toy data, recording losses and metrics;
    a COCO config gets the toy data, 3 classes, no ImageNet weights and 100
    queries (DINO picks its queries among the encoder's tokens: a 128 px
    image has 16^2 + 8^2 + 4^2 + 2^2 = 340, too few for 900)."""
    lines = [f'_base_ = [{osp.join(REPO, "configs/dino", name + ".py")!r}]']
    if name != 'gcvit_xxt_shapes':
        lines = [textwrap.dedent(f'''\
            _base_ = [{osp.join(REPO, 'configs/dino', name + '.py')!r},
                      {TOY!r}]
            custom_imports = dict(
                imports=['gcvit_mm', 'gcvit_mm.datasets.toy_coco'],
                allow_failed_imports=False)
            model = dict(num_queries=100,
                         backbone=dict(init_cfg=None),
                         bbox_head=dict(num_classes=3))
            train_dataloader = dict(_base_.toy_train_dataloader,
                                    _delete_=True)
            val_dataloader = dict(_base_.toy_val_dataloader, _delete_=True)
            test_dataloader = val_dataloader
            val_evaluator = dict(_base_.toy_val_evaluator, _delete_=True,
                                 metric='bbox')
            test_evaluator = val_evaluator''')]
    lines.append("custom_hooks = [dict(type='RecordRunHook')]")
    path = tmp_path / f'{name}_toy.py'
    path.write_text('\n'.join(lines) + '\n')
    return str(path)


def train_two_iterations(cfg_path, work_dir):
    """One epoch of 4 images, 2 per batch, then validation."""
    runner = load_tool('train').main([
        cfg_path, '--work-dir', str(work_dir), '--cfg-options',
        'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
        'train_dataloader.dataset.indices=4',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False',
        'default_hooks.logger.interval=1', 'randomness.seed=0',
        # no checkpoint: GC ViT-L's DINO with its AdamW state is 2.6 GB
        'default_hooks.checkpoint.interval=-1',
        'default_hooks.checkpoint.save_last=False'
    ])
    return runner, RecordRunHook.last


@pytest.mark.parametrize('name', COCO_MODELS + ['gcvit_xxt_shapes'])
def test_two_iterations_then_coco_box_map(tmp_path, toy_env, fallback_calls,
                                          name):
    runner, hook = train_two_iterations(toy_run_config(tmp_path, name),
                                        tmp_path / 'work')
    assert runner.iter == 2 and len(hook.losses) == 2
    for step in hook.losses:
        assert all(math.isfinite(v) for v in step.values()), step
        last_layer = step['loss_cls'] + step['loss_bbox'] + step['loss_iou']
        # the total also holds the other decoder layers', the encoder's
        # and the denoising queries' losses, all positive
        assert step['loss'] > 2 * last_layer, step
    # once per encoder and decoder layer in each training iteration, and
    # again in validation
    layers = runner.model.encoder.num_layers + runner.model.decoder.num_layers
    assert len(fallback_calls) >= 3 * layers
    metrics = hook.metrics[-1]
    assert {'coco/bbox_mAP', 'coco/bbox_mAP_50'} <= set(metrics), metrics
    assert 0 <= metrics['coco/bbox_mAP'] <= 1
    # fp32 on CPU, whatever the config asks for (AMP needs a GPU)
    assert type(runner.optim_wrapper).__name__ == 'OptimWrapper'
