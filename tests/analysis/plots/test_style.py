"""Our figure style is applied around each figure (matplotlib.rc_context), never to the user's global rcParams."""
import subprocess
import sys

import matplotlib.pyplot as plt

from pab_campaign.analysis.plots.style import OKABE_ITO, styled


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
