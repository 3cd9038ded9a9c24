"""``gcvit_mm::`` config bases: importing gcvit_mm registers the package in
mmengine's table of config packages (and keeps working if mmengine drops
that table), and what a ``gcvit_mm::`` base defines is built in the config's
own scope (mmdet, mmseg), where mmengine would look in a 'gcvit_mm' scope
that does not exist."""
import os.path as osp

import pytest
from mmengine.config import Config
from mmengine.config import utils as config_utils

import gcvit_mm  # noqa: F401  (registers the package)
from gcvit_mm.utils.config import (register_config_package,
                                   use_default_scope_for_package_bases)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.fixture
def user_config(tmp_path):
    path = tmp_path / 'user.py'
    path.write_text("_base_ = 'gcvit_mm::mask_rcnn/gcvit_xxt_shapes.py'\n"
                    "train_cfg = dict(max_epochs=1)\n")
    return str(path)


def test_import_registers_the_package_for_mmengine(user_config):
    assert config_utils.MODULE2PACKAGE['gcvit_mm'] == 'gcvit_mm'
    cfg = Config.fromfile(user_config)
    assert cfg.train_cfg.max_epochs == 1
    assert cfg.model.backbone.arch == 'xxtiny'  # from the installed base
    assert cfg.runner_type == 'InputCheckRunner'


def test_without_mmengine_table_nothing_breaks(monkeypatch):
    """A mmengine without MODULE2PACKAGE (or with another type there):
    registering reports that it could not, and raises nothing."""
    monkeypatch.delattr(config_utils, 'MODULE2PACKAGE')
    assert register_config_package() is False
    monkeypatch.setattr(config_utils, 'MODULE2PACKAGE', ('mmdet', ),
                        raising=False)
    assert register_config_package() is False


def test_package_bases_are_built_in_the_config_scope(user_config):
    cfg = Config.fromfile(user_config)
    marked = [cfg.train_dataloader.dataset, cfg.val_evaluator,
              cfg.param_scheduler[0], cfg.custom_hooks[0]]
    # mmengine marks what the base defines anew with the base's package;
    # mmengine's root registries know neither the dataset nor the metric
    assert [node._scope_ for node in marked] == ['gcvit_mm'] * 4
    assert cfg.model._scope_ == 'mmdet'  # from mmdet's own base
    changed = use_default_scope_for_package_bases(cfg)
    assert [node._scope_ for node in marked] == ['mmdet'] * 4
    assert changed >= 4 and cfg.model._scope_ == 'mmdet'
    assert use_default_scope_for_package_bases(cfg) == 0  # nothing left
