"""The Teach page in a real headless Chromium: add clips, train with progress, see the figure, activate.

It drives `python -m realtime serve --work-dir` in a child process, as a user would.
"""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest
from selenium.webdriver.common.by import By

from test_teach import cut
from test_web_browser import Server, browser, csp_violations, save_screenshot, wait_for  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.training]

# Records every value the training's progress bar takes.
WATCH_PROGRESS = """
window.progressSeen = [];
const bar = document.getElementById('train-progress');
const set = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, 'value').set;
Object.defineProperty(bar, 'value', {set(v) { set.call(this, v); window.progressSeen.push(Number(v)); },
                                      get() { return Number(this.getAttribute('value')); }});
"""


def add_clip(driver, path, action: str, subject: str, span: tuple[float, float]) -> None:
    driver.find_element(By.ID, "clip-file").send_keys(str(path))
    wait_for(driver, "return document.getElementById('clip-preview').readyState >= 1", 30, "the clip's preview")
    for field, value in (("action", action), ("subject", subject), ("start-s", span[0]), ("end-s", span[1])):
        element = driver.find_element(By.ID, field)
        element.clear()
        element.send_keys(str(value))
    driver.find_element(By.ID, "add-button").click()


@pytest.mark.timeout(1200)
def test_teach_page_adds_clips_trains_with_progress_shows_the_figure_and_activates(browser, datasets, tmp_path):  # noqa: F811
    clips = [
        cut(datasets / "wild_dev" / "OTHER" / name, tmp_path / name, 0.0)
        for name in ("indstudy_squats_side.mp4", "aerobeat_guard_squat.mp4")
    ]
    server = Server(
        ["serve", "--port", "0", "--work-dir", str(tmp_path / "work"), "--teach-data",
         f"videos:{datasets / 'weizmann'}"],
        r"serving on (http://127\.0\.0\.1:\d+)/",
    )  # fmt: skip
    try:
        browser.get(server.url + "/")
        browser.find_element(By.ID, "teach-link").click()
        wait_for(browser, "return document.querySelectorAll('#models tbody tr').length", 10, "the models list")
        for count, (clip, subject) in enumerate(zip(clips, ("woman", "man"), strict=True), start=1):
            add_clip(browser, clip, "squat", subject, (0.5, 6.0))
            wait_for(browser, f"return document.querySelectorAll('#clips tbody tr').length == {count}", 60,
                     f"clip {count} listed")  # fmt: skip
        rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "#clips tbody tr")]
        assert all(row.startswith("SQUAT") and "0.5\u20136" in row for row in rows), rows

        browser.execute_script(WATCH_PROGRESS)
        for field, value in (("epochs", 3), ("subset", 10)):
            element = browser.find_element(By.ID, field)
            element.clear()
            element.send_keys(str(value))
        browser.find_element(By.ID, "train-button").click()
        wait_for(
            browser,
            "const f = document.getElementById('figure'); return !document.getElementById('figure-box').hidden"
            " && f.complete && f.naturalWidth > 0",
            400,
            "the held-out figure",
        )
        seen = browser.execute_script("return window.progressSeen")
        assert seen[-1] == 100 and any(0 < v < 100 for v in seen), seen
        assert "SQUAT: no held-out person has it" in browser.find_element(By.ID, "train-warnings").text
        save_screenshot(browser, "teach-trained.png")

        browser.find_element(By.CSS_SELECTOR, "#models tbody tr[data-id='2'] button").click()
        wait_for(browser, "return document.querySelector(\"#models tr[data-id='2']\").className == 'active'", 10,
                 "model 2 active")  # fmt: skip
        with urllib.request.urlopen(server.url + "/api/models", timeout=10) as reply:
            models = json.loads(reply.read())["models"]
        assert [m["id"] for m in models if m["active"]] == [2]
        shutil.copy(save_screenshot(browser, "teach-page.png"), tmp_path / "teach-page.png")
        assert not csp_violations(browser)
    finally:
        assert server.stop() == 0
