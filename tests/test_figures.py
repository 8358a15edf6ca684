"""Every figure spikeconv draws, built on small synthetic data and inspected before it is written: titles,
axis labels, legends where there are several lines, a colour bar for the heat maps, Fig. S1's panels a-e in
order, and the Pearson r printed as the caller reports it."""

import pytest
import torch

pytest.importorskip("matplotlib")
from spikeconv.analysis import figures  # noqa: E402
from spikeconv.analysis.decompose import PARTS, LayerErrors  # noqa: E402


@pytest.fixture
def drawn(monkeypatch):
    """The figures passed to ``figures._save``, kept open for inspection (and still written)."""
    kept = []

    def keep(fig, path, *args, **kwargs):
        kept.append(fig)
        fig.canvas.draw()
        fig.savefig(path)
        return path
    monkeypatch.setattr(figures, "_save", keep)
    yield kept
    for fig in kept:
        figures.plt.close(fig)


def _titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_fig_s1_has_panels_a_to_e_a_colour_bar_and_the_reported_r(drawn, tmp_path):
    torch.manual_seed(0)
    ann = torch.rand(4, 5, 5)
    figures.heatmaps_and_scatter(ann, ann * 0.9, ann + 0.05 * torch.rand(4, 5, 5), "conv2", 3, tmp_path / "s1.png",
                                 r=(0.9912, 0.9987), samples=8)
    fig = drawn[0]
    titles = _titles(fig)
    assert [t[:3] for t in titles] == ["(a)", "(b)", "(c)", "(d)", "(e)"]
    assert "r = 0.991 over 8 samples" in titles[3] and "r = 0.999 over 8 samples" in titles[4]
    colour_bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert len(colour_bars) == 1 and "rate units" in colour_bars[0].get_ylabel()
    for ax in (ax for ax in fig.axes if ax.get_title()[:3] in ("(d)", "(e)")):
        assert ax.get_xlabel() and ax.get_ylabel()
    assert (tmp_path / "s1.png").stat().st_size > 1000


def test_curves_bars_and_operations_are_titled_labelled_and_keep_the_ann_line_clear(drawn, tmp_path):
    figures.correlation_vs_t({"a": [0.5, 0.8, 0.9], "b": [0.2, 0.6, 0.95]}, tmp_path / "c.png", "correlation")
    layers = [LayerErrors(name, torch.rand(10), {part: torch.rand(10) - 0.5 for part in PARTS}, torch.zeros(10))
              for name in ("conv1", "conv2")]
    figures.decomposition_bars(layers, tmp_path / "d.png", 4)
    figures.accuracy_vs_operations([1e5, 1e6, 1e7], [40.0, 80.0, 98.0], 5e6, 99.0, tmp_path / "o.png")
    for fig in drawn:
        for ax in fig.axes:
            assert ax.get_title() and ax.get_xlabel() or ax.get_xticklabels(), fig
            assert ax.get_ylabel()
            assert ax.get_legend() is not None
    legend = drawn[2].axes[0].get_legend()
    assert legend._loc == 4  # lower right: below the ANN's accuracy line, beside the rising SNN curve
    assert "paper 004" in drawn[2].axes[0].get_title()
