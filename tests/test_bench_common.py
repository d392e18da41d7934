"""bench/_common.py: the paper settings are valid configurations, and the GFLOP/s arithmetic."""

import sys
from pathlib import Path

import pytest

import vidgen_tf

sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
import _common  # noqa: E402


def test_achieved_rate_is_two_flops_per_multiply_add_over_the_peak():
    # 1e9 multiply-adds per clip at 2 clips/s: 4 GFLOP/s, half of an 8 GFLOP/s peak.
    assert _common.achieved(1e9, 2.0, 8.0) == (4.0, 50.0)


def test_the_matmul_peak_reports_both_libraries():
    peak = _common.matmul_peak_gflops(size=64, repeats=1)
    assert set(peak) == {"tensorflow", "numpy", "size", "repeats"}
    assert peak["tensorflow"] > 0 and peak["numpy"] > 0 and peak["size"] == 64


@pytest.mark.parametrize("name", sorted(_common.PAPER_SETTINGS))
def test_every_paper_setting_builds_and_is_labelled_by_its_shape(name):
    config = _common.PAPER_SETTINGS[name]
    model = vidgen_tf.build(name, **config)
    assert model.video_shape == (config["num_frames"], config["height"], config["width"], config["channels"])
    labels = [label for label, model_name, _ in _common.settings([name]) if model_name == name]
    assert labels[0] == f"{name} paper {config['height']}x{config['width']}x{config['num_frames']} RGB"
    assert not _common.settings([name], include_paper=False)[0][0].startswith(f"{name} paper")


def test_paper_batch_sizes_belong_to_paper_settings():
    assert set(_common.PAPER_BATCH_SIZES) <= set(_common.PAPER_SETTINGS)
    assert _common.PAPER_BATCH_SIZES == {"vgan": 64, "dcgan": 128}
