"""The HTML report in a real browser: headless Chromium opens it from disk and shows every asset.

Needs the Debian packages `chromium` and `chromium-driver` (`.ci/run` installs them when apt-get
can) and selenium (the `test` extra); without them the test skips and says which is missing.
"""

import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.test_report import check_page, make_run
from vidgen_tf import report

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
LOAD_TIMEOUT_SECONDS = 30


def _chromium():
    """`(binary, driver)`, or skips naming what is missing."""
    binary = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium chromium-driver)")
    if not Path(CHROMEDRIVER).is_file():
        pytest.skip(f"chromedriver is not installed at {CHROMEDRIVER} (apt-get install -y chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    return binary, CHROMEDRIVER


def _browser(tmp_path, monkeypatch):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _chromium()
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must not look anything up
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1600",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver_path), options=options)


def _wait_for(driver, script, what):
    deadline = time.monotonic() + LOAD_TIMEOUT_SECONDS
    while True:
        result = driver.execute_script(script)
        if result:
            return result
        if time.monotonic() > deadline:
            state = driver.execute_script(
                "return Array.from(document.querySelectorAll('img, video')).map(e => [e.tagName, e.src, "
                "e.naturalWidth, e.readyState, e.videoWidth, e.error && e.error.message]);")
            pytest.fail(f"{what} within {LOAD_TIMEOUT_SECONDS} s; elements: {state}")
        time.sleep(0.2)


def test_report_renders_in_headless_chromium(tmp_path, monkeypatch):
    _chromium()  # skip before any work when the browser is missing
    run = make_run(tmp_path / "run")
    page = report.write_report(run, tmp_path / "report.html", num_samples=4, scale=4)
    check_page(page)
    with Image.open(tmp_path / "report_files" / "samples.gif") as gif:
        assert gif.n_frames > 1  # the GIF animates

    driver = _browser(tmp_path, monkeypatch)
    try:
        driver.get(page.resolve().as_uri())  # file://, no server
        _wait_for(driver, "return document.readyState === 'complete';", "the page did not load")
        images = _wait_for(
            driver,
            "const imgs = Array.from(document.images);"
            "return imgs.every(i => i.complete && i.naturalWidth > 0) && "
            "imgs.map(i => [i.getAttribute('src'), i.naturalWidth, i.naturalHeight]);",
            "not every <img> loaded")
        sources = {src: (width, height) for src, width, height in images}
        assert set(sources) == {"report_files/samples.gif", "report_files/curves.png", "report_files/real.gif"}
        with Image.open(tmp_path / "report_files" / "curves.png") as curves:
            assert sources["report_files/curves.png"] == curves.size  # the curves render at their size
        with Image.open(tmp_path / "report_files" / "samples.gif") as gif:
            assert sources["report_files/samples.gif"] == gif.size
            assert sources["report_files/real.gif"] == gif.size  # real clips at the samples' size
        videos = _wait_for(
            driver,
            "const vs = Array.from(document.querySelectorAll('video'));"
            "return vs.length > 0 && vs.every(v => v.readyState >= 2 && v.videoWidth > 0) && "
            "vs.map(v => [v.getAttribute('src'), v.readyState, v.videoWidth, v.videoHeight]);",
            "not every <video> decoded (readyState >= 2, videoWidth > 0)")
        assert [v[0] for v in videos] == ["report_files/samples.mp4"]
        assert videos[0][2:] == [4 * 16 * 2 + 2, 4 * 16 * 2 + 2]  # the 2x2 grid at 4x
        screenshot = tmp_path / "report.png"
        assert driver.save_screenshot(str(screenshot))
        print(f"screenshot: {screenshot}")
        errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
        assert not errors, f"console errors: {errors}"
    finally:
        driver.quit()
    with Image.open(screenshot) as shot:
        assert shot.width > 0 and shot.height > 0


def test_a_missing_browser_or_driver_skips_with_the_reason(monkeypatch):
    import tests.test_report_browser as this

    monkeypatch.setattr(this, "CHROMIUM", "/no/such/chromium")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        _chromium()
    monkeypatch.setattr(shutil, "which", lambda name: "/bin/sh")
    monkeypatch.setattr(this, "CHROMEDRIVER", "/no/such/chromedriver")
    with pytest.raises(pytest.skip.Exception, match="chromedriver is not installed at /no/such/chromedriver"):
        _chromium()
