"""The report page renders in a real browser: headless Chromium screenshot of a tiny run's report.html.

Optional: skipped when no Chromium is installed (``apt-get install -y chromium`` on Debian). Set
``LSTMTEXT_SCREENSHOT_DIR`` to keep the screenshot for a look.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from lstmtext.layers import LSTM, Dense, Embedding
from lstmtext.models import Sequential
from lstmtext.report import ReportCallback

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH, HEIGHT = 1280, 2400


def _browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(f"no headless browser installed (looked for {', '.join(BROWSERS)})")


@pytest.mark.slow
def test_report_page_screenshot(tmp_path):
    import matplotlib.image

    browser = _browser()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, (120, 10))
    y = (x[:, -3:].mean(axis=1) > 15).astype(np.float32)
    x_test = rng.integers(1, 30, (40, 10))
    y_test = (x_test[:, -3:].mean(axis=1) > 15).astype(np.float32)
    model = Sequential([Embedding(30, 6), LSTM(5), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    cb = ReportCallback(tmp_path / "run", test_data=(x_test, y_test), labels=["low", "high"])
    model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, callbacks=[cb])

    shot = tmp_path / "report.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--no-first-run", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
           "--hide-scrollbars", f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", cb.path.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and shot.is_file(), f"{browser} failed ({proc.returncode}): {proc.stderr[-2000:]}"
    img = matplotlib.image.imread(shot)
    assert img.shape[:2] == (HEIGHT, WIDTH)
    # the page's dark header band (#1d2b45) is at the top: the CSS applied
    np.testing.assert_allclose(img[10, 600, :3], np.array([0x1D, 0x2B, 0x45]) / 255, atol=0.02)
    # the plots were drawn: many distinct colours below the header (a blank or broken page has a few)
    body = (img[200:2000, :, :3] * 255).astype(np.uint8).reshape(-1, 3)
    assert len(np.unique(body, axis=0)) > 200
    keep = os.environ.get("LSTMTEXT_SCREENSHOT_DIR")
    if keep:
        shutil.copy(shot, os.path.join(keep, "report-screenshot.png"))
