"""Our figure style is applied around each figure (matplotlib.rc_context), never to the user's global rcParams."""
import io
import subprocess
import sys

import matplotlib.pyplot as plt
import pytest

from pab_campaign.analysis.plots.style import AXIS_LIMIT, OKABE_ITO, styled, write_png
from tests.helpers import command_env


def test_importing_the_figures_leaves_global_rcparams_alone():
    code = ("import matplotlib; before = {k: str(v) for k, v in matplotlib.rcParams.items()}\n"
            "import pab_campaign.analysis.page.sections, pab_campaign.analysis.plots.curves, "
            "pab_campaign.analysis.mbe.figures, pab_campaign.analysis.phases.figures, "
            "pab_campaign.analysis.modeldiff.outputs\n"
            "after = {k: str(v) for k, v in matplotlib.rcParams.items()}\n"
            "print(sorted(k for k in before if before[k] != after[k] and not k.startswith('backend')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_styled_figure_gets_the_palette_and_literal_dollars():
    @styled
    def draw():
        figure, ax = plt.subplots()
        (line,) = ax.plot([0, 1])
        return figure, line.get_color(), ax.set_title("lr=$0.1$").get_parse_math()

    figure, colour, parse_math = draw()
    plt.close(figure)
    assert (colour, parse_math) == (OKABE_ITO[0], False)
    figure, ax = plt.subplots()  # outside: matplotlib's own defaults
    assert ax.set_title("$x$").get_parse_math() is True and ax.plot([0, 1])[0].get_color() != OKABE_ITO[0]
    plt.close(figure)


def test_importing_the_figure_code_keeps_the_users_backend():
    """A notebook's backend is the notebook's: importing the figure modules chooses none; the command
    line draws with Agg unless the user chose a backend."""
    code = ("import matplotlib; matplotlib.use('pdf'); import pab_campaign.analysis.plots.style, "
            "pab_campaign.analysis.modeldiff.outputs, pab_campaign.analysis.page.render; "
            "print(matplotlib.get_backend())")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=command_env(), timeout=120)
    assert found.stdout.strip() == "pdf", found.stderr[-2000:]
    env = {key: value for key, value in command_env().items() if key != "MPLBACKEND"}
    code = ("import os, sys; from pab_campaign import cli; cli.main(['properties', sys.argv[1]]); "
            "print(os.environ['MPLBACKEND'], file=sys.stderr)")
    found = subprocess.run([sys.executable, "-c", code, "/nonexistent"], capture_output=True, text=True, env=env,
                           timeout=120)
    assert found.stderr.strip().splitlines()[-1] == "Agg"


@pytest.mark.parametrize(("values", "shown"), [
    ([0.0, 1.7e308], (0.0, AXIS_LIMIT)), ([-1.79e308, 1.79e308], (-AXIS_LIMIT, AXIS_LIMIT)),
    ([1e308, 1.7e308], (AXIS_LIMIT / 2, AXIS_LIMIT)), ([-1.7e308, -1e308], (-AXIS_LIMIT, -AXIS_LIMIT / 2)),
    ([-1e308, 5e306], (-AXIS_LIMIT, 5e306)),
])
def test_values_near_the_float_range_are_drawn_within_reach(values, shown):
    """matplotlib's margins and ticks overflow past about 1.6e308 ("arange: cannot compute length"):
    such an axis is shown within ±AXIS_LIMIT; a panel within reach, or without data, keeps its own."""
    figure, (far, near, empty) = plt.subplots(1, 3)
    far.plot([0, 1], values)
    near.plot([0, 1], [0.1, 0.5])
    before = near.get_ylim(), empty.get_ylim()
    write_png(figure, io.BytesIO())
    assert far.get_ylim() == shown and (near.get_ylim(), empty.get_ylim()) == before
    plt.close(figure)
