"""The command line (``python -m eprop``: help, ``info``, ``demo`` with its
figure) and progress reporting of long work (``train_stream(progress=True)``)."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import eprop
import numpy as np
import pytest
from eprop import _core, _demo, _progress
from eprop.__main__ import main


def test_no_arguments_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m eprop") and "demo" in out and "info" in out


def test_module_runs_as_a_program():
    done = subprocess.run([sys.executable, "-m", "eprop"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage" in done.stdout, done


def test_info(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    build = _core._build_info()
    assert build["simd"] in ("avx2", "portable") and build["profile"] == "release"
    assert out.startswith(f"eprop {eprop.__version__} (release build, ")
    assert f"hot loops: {build['simd']}" in out
    assert "float types: float64, float32" in out
    assert re.search(rf"threads: {build['threads']} in the default pool", out)
    assert build["threads"] >= 1
    for extra in ("plot", "progress", "ray"):
        assert re.search(rf"^    {extra} +\S", out, flags=re.M), out


def test_demo_learns_and_saves_a_figure(tmp_path, capsys):
    png = tmp_path / "demo.png"
    assert main(["demo", "--iterations", "300", "--png", str(png)]) == 0
    out = capsys.readouterr().out
    trained = float(re.search(r"trained network, frozen weights: loss [0-9.]+, normalized MSE ([0-9.]+)", out)[1])
    zero = float(re.search(r"predicting zero: +loss [0-9.]+, normalized MSE ([0-9.]+)", out)[1])
    assert trained < 0.05 * zero, out
    assert f"saved the figure {png}" in out
    # a real figure: the size asked for, drawn in many colours (axes, text, three
    # curves), mostly white background but not blank
    from matplotlib.image import imread

    img = imread(png)
    assert img.shape[:2] == (_demo.FIGURE_PIXELS[1], _demo.FIGURE_PIXELS[0])
    rgb = (img[..., :3] * 255).round().astype(int)
    colours = np.unique(rgb.reshape(-1, 3), axis=0)
    assert len(colours) > 100, len(colours)
    ink = np.mean(rgb.sum(axis=2) < 600)
    assert 0.02 < ink < 0.5, ink
    # the three curves' colours are there: black target, red (C3) trained output, blue (C0) loss
    for colour in ((0, 0, 0), (214, 39, 40), (31, 119, 180)):
        assert np.any(np.all(np.abs(rgb - colour) <= 8, axis=2)), colour


def test_demo_without_matplotlib_says_how_to_get_the_figure(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    png = tmp_path / "demo.png"
    result = _demo.run(iterations=2, png=str(png))
    out = capsys.readouterr().out
    assert 'pip install "eprop[plot]"' in out and not png.exists()
    assert np.isfinite(result["frozen"])


def test_demo_refuses_bad_iterations(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--iterations", "0"])
    assert "--iterations: expected an integer >= 1, got 0" in capsys.readouterr().err


# ---------------------------------------------------------------- progress


def stream(n_chunks=5, t=200, seed=0):
    rng = np.random.default_rng(seed)
    return [((rng.random((t, 4)) < 0.2).astype(float), rng.random((t, 2))) for _ in range(n_chunks)]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_in_a_log_is_plain_lines(capsys):
    net = eprop.RecurrentNetwork(4, 10, 2, seed=1)
    loss = net.train_stream(stream(), progress=True)
    err = capsys.readouterr().err
    assert "\r" not in err
    line = "train_stream: 1,000 of 1,000 steps in "
    assert err.startswith(line) and err.endswith(f" steps/s, loss {loss:.4g} (done)\n"), err
    # the same numbers as without progress
    again = eprop.RecurrentNetwork(4, 10, 2, seed=1)
    assert again.train_stream(stream()) == loss
    assert np.array_equal(again.W_rec, net.W_rec)


def test_progress_lines_every_interval():
    f = io.StringIO()
    p = _progress.Progress("work", None, every=0.0, file=f)
    p.update(10, 0.5)
    p.update(5)
    p.close()
    lines = f.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("work: 10 steps in ") and lines[0].endswith("loss 0.5 (running)")
    assert lines[2].startswith("work: 15 steps in ") and lines[2].endswith("loss 0.5 (done)")


def test_progress_on_a_terminal_is_a_tqdm_bar(monkeypatch):
    import tqdm  # noqa: F401 - part of the test extra, never skipped

    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    net = eprop.EpropTrainer(4, 10, 2, seed=2)
    loss = net.train_stream(stream(seed=3), progress=True)
    out = term.getvalue()
    assert "train_stream" in out and "1.00k/1.00k" in out and "step/s" in out, out
    assert f"loss {loss:.4g}" in out, out


def test_progress_on_a_terminal_without_tqdm_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    eprop.OnlineTrainer([4, 6, 2], seed=4).train_stream(stream(seed=5), progress=True)
    out = term.getvalue()
    assert out.startswith('eprop: progress bars need tqdm (pip install "eprop[progress]")'), out
    assert "train_stream: 1,000 of 1,000 steps" in out


def test_progress_bar_is_closed_when_a_chunk_is_refused(capsys):
    net = eprop.RecurrentNetwork(4, 10, 2, seed=1)
    chunks = stream() + [(np.full((3, 4), np.nan), np.zeros((3, 2)))]
    with pytest.raises(ValueError, match=r"chunks\[5\]"):
        net.train_stream(chunks, progress=True)
    assert capsys.readouterr().err.endswith("(done)\n")


def test_progress_reports_go_to_stdout_beside_the_bar(capsys, monkeypatch):
    # without a terminal: the line as it is, the progress lines on stderr
    p = _progress.Progress("work", 10, every=1e9)
    p.write("  iteration 1: accuracy 0.5")
    p.update(10, 0.25)
    p.close()
    out, err = capsys.readouterr()
    assert out == "  iteration 1: accuracy 0.5\n"
    assert err.startswith("work: 10 of 10 steps in ") and err.endswith("loss 0.25 (done)\n")
    # on a terminal: through tqdm, which clears and redraws its bar around it
    term = Terminal()
    p = _progress.Progress("work", 10, file=term)
    p.write("  iteration 2: accuracy 0.75")
    p.update(10, 0.125)
    p.close()
    assert capsys.readouterr().out == "  iteration 2: accuracy 0.75\n"
    assert "loss 0.125" in term.getvalue() and "100%" in term.getvalue()
