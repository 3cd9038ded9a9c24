"""tools/attention_stats.py: the attention entropy it reports is the one the
weights imply (1 = uniform average over the window, 0 = one token)."""
import torch

from detection_utils import load_tool, write_small_config


def _stats_of(tmp_path, monkeypatch, capsys, data_root, set_weights):
    """Save a small toy detector whose weights ``set_weights`` edited, run
    the tool on it and return {blocks: (attention, bias alone, bias std)}."""
    from mmdet.apis import init_detector
    monkeypatch.setenv('GCVIT_MM_DATA', data_root)
    cfg = write_small_config(tmp_path / 'small.py', 'mask_rcnn')
    model = init_detector(cfg, None, device='cpu')
    with torch.no_grad():
        for name, param in model.backbone.named_parameters():
            set_weights(name, param)
    ckpt = str(tmp_path / 'edited.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    load_tool('attention_stats').main([cfg, ckpt, '--images', '2'])
    rows = [line.split() for line in capsys.readouterr().out.splitlines()
            if line.startswith('stage ')]
    return {f'{r[0]} {r[1]} {r[2]}': tuple(map(float, r[3:])) for r in rows}


def _no_keys(name, param):
    """Zero k (and q): every logit is the bias."""
    if '.attn.qkv.' in name or '.attn.kv.' in name:
        param.zero_()


def test_zero_logits_are_a_uniform_average(tmp_path, monkeypatch, capsys,
                                           tiny_toy_data):
    def zero_tables(name, param):
        _no_keys(name, param)
        if name.endswith('relative_position_bias_table'):
            param.zero_()

    stats = _stats_of(tmp_path, monkeypatch, capsys, tiny_toy_data,
                      zero_tables)
    assert len(stats) == 8  # 4 stages x (local, global)
    assert all(v == (1.0, 1.0, 0.0) for v in stats.values()), stats


def test_a_bias_on_the_own_position_is_attention_to_one_token(
        tmp_path, monkeypatch, capsys, tiny_toy_data):
    def self_bias(name, param):
        _no_keys(name, param)
        if name.endswith('relative_position_bias_table'):
            w = (int(param.shape[0]**0.5) + 1) // 2  # (2w-1)^2 rows
            param.zero_()
            param[(w - 1) * (2 * w - 1) + (w - 1)] = 40.  # offset (0, 0)

    stats = _stats_of(tmp_path, monkeypatch, capsys, tiny_toy_data,
                      self_bias)
    assert len(stats) == 8
    for name, (attention, bias_alone, std) in stats.items():
        assert attention < 1e-3 and bias_alone < 1e-3, (name, stats)
        assert std > 1, name
