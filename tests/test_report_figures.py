"""The figures of a ``geomfeat compare`` report say what they show: which model, which
components, which lag; legends name every curve and shaded region and cover no panel."""

from __future__ import annotations

import pytest
import torch
from conftest import EXAMPLE

from geomfeat.evaluate import VAMPNetRecipe, compare
from geomfeat.evaluate import report as figures

TINY = VAMPNetRecipe(budget=300, batch_size=64, steps_per_epoch=4, max_epochs=3, patience=2,
                     restarts=2)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A real (tiny) comparison on the bundled example: torsions against distances."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield compare(EXAMPLE / "ala2.pdb", [EXAMPLE / "ala2.xtc"], ["10ps", "20ps"],
                      features=["torsions"], stride=10, n_blocks=8, seeds=[0, 1], recipe=TINY,
                      log=None, cache=tmp_path_factory.mktemp("cache"))
    finally:
        torch.set_num_threads(threads)


def legend_texts(fig) -> list[str]:
    (legend,) = fig.legends
    return [t.get_text() for t in legend.get_texts()]


def assert_legend_covers_no_panel(fig) -> None:
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), ax.get_title()


def test_free_energy_panels_name_components_lag_and_model(result):
    fig = figures._fes_figure(result)
    panels = [ax for ax in fig.axes if ax.images]
    assert len(panels) == 4  # (linear VAMP, VAMPNet) × (torsions, distances)
    for ax in panels:
        assert ax.get_xlabel() == "VAMP component 1" and ax.get_ylabel() == "VAMP component 2"
    titles = sorted(ax.get_title() for ax in panels)
    assert titles == ["VAMPNet: distances", "VAMPNet: torsions", "linear VAMP: distances",
                      "linear VAMP: torsions"]
    title = fig.get_suptitle()
    assert "first two VAMP components at lag 10 ps" in title and "seed-0" in title
    assert "row 2: VAMP of the VAMPNet outputs" in title
    colorbar = next(ax for ax in fig.axes if not ax.images and ax.get_ylabel())
    assert colorbar.get_ylabel() == "free energy (kT)"


def test_timescale_legend_explains_lines_and_shading_off_the_panels(result):
    fig = figures._its_figure(result)
    assert legend_texts(fig) == ["torsions", "distances", "slowest process",
                                 "2nd slowest process", "timescale < lag time:\nnot resolved"]
    assert_legend_covers_no_panel(fig)
    linear, vampnet = fig.axes[:2]
    assert "linear VAMP outputs" in linear.get_title() and "VAMPNet" in vampnet.get_title()
    assert all("trained at lag 10 ps" in ax.get_title() for ax in (linear, vampnet))
    assert linear.get_xlabel() == "TICA lag time (ps)"
    assert linear.get_ylabel() == "implied timescale (ps)"


def test_training_legend_names_sets_and_line_styles_off_the_panels(result):
    fig = figures._training_figure(result.report)
    assert legend_texts(fig) == ["torsions", "distances", "chosen restart", "other restarts",
                                 "best epoch (kept)"]
    assert_legend_covers_no_panel(fig)
    assert [ax.get_title() for ax in fig.axes] == ["lag 10 ps", "lag 20 ps"]
    assert all(ax.get_ylabel() == "validation VAMP-2" for ax in fig.axes)


def test_score_panels_name_model_and_lag(result):
    fig = figures._scores_figure(result.report)
    assert [ax.get_title() for ax in fig.axes] == [
        "linear VAMP (k = 4)\nlag 10 ps", "linear VAMP (k = 4)\nlag 20 ps",
        "VAMPNet (5 states)\nlag 10 ps", "VAMPNet (5 states)\nlag 20 ps"]
    assert all(ax.get_xlabel() == "test VAMP-2" for ax in fig.axes)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["torsions", "distances"]
    assert "mean ± sd over 2 seeds" in fig.get_suptitle()
