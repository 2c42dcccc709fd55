"""The Gradio demo (demo/app.py) in a real headless browser: Debian's chromium + chromium-driver driven by
selenium. The app serves a model trained by `python train.py` on 127.0.0.1; the test types an example,
clicks, reads the predicted intent from the page, compares it with the pipeline's, and saves a
screenshot (also to $MMAFFECT_DEMO_SCREENSHOT when set: docs/images/demo.png comes from there)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from lgsrr_inference_support import REPO, trained_demo_model

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
EXAMPLE = {
    "text": "Thank you so much for helping me move!",
    "descriptions": {"actions": "She hugs him and hands him a cup of coffee.",
                     "expressions": "She smiles warmly, clearly grateful.",
                     "interactions": "She looks at her friend and thanks him."},
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists():
            pytest.skip(f"{binary} is not installed (apt-get install chromium chromium-driver; .ci/run does)")
    pytest.importorskip("gradio", reason="the demo extra is not installed (pip install 'mmaffect[demo]')")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (the dev extra has it)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}", "--window-size=1280,1000"):
        options.add_argument(flag)
    # the driver path is given: selenium-manager never downloads a driver or a browser
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def demo_app(tmp_path_factory):
    pytest.importorskip("gradio", reason="the demo extra is not installed (pip install 'mmaffect[demo]')")
    model = trained_demo_model(tmp_path_factory.getbasetemp() / "lgsrr_demo")
    port = _free_port()
    log = open(tmp_path_factory.mktemp("demo_app") / "app.log", "w+")
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    process = subprocess.Popen([sys.executable, str(REPO / "demo" / "app.py"), "--model", str(model), "--port", str(port)],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 240
    while time.time() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"demo/app.py exited with {process.returncode}:\n{log.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail(f"demo/app.py did not answer on {url} within 240 s")
    yield url, model
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


def test_demo_in_a_headless_browser(browser, demo_app, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, model = demo_app
    browser.get(url)
    wait = WebDriverWait(browser, 120)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#utterance textarea")).send_keys(EXAMPLE["text"])
    for aspect, text in EXAMPLE["descriptions"].items():
        browser.find_element(By.CSS_SELECTOR, f"#description-{aspect} textarea").send_keys(text)
    browser.find_element(By.CSS_SELECTOR, "#predict").click()
    label = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#intent textarea").get_attribute("value") or None)
    score = browser.find_element(By.CSS_SELECTOR, "#score textarea").get_attribute("value")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#importance img, #importance canvas, #importance svg"))
    time.sleep(1.0)  # let the plot finish painting before the screenshot
    screenshot = tmp_path / "demo.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("MMAFFECT_DEMO_SCREENSHOT"):
        shutil.copyfile(screenshot, os.environ["MMAFFECT_DEMO_SCREENSHOT"])

    from mmaffect import LGSRRForSequenceClassification, LGSRRProcessor
    from mmaffect.models.lgsrr import MultimodalIntentRecognitionPipeline

    pipe = MultimodalIntentRecognitionPipeline(model=LGSRRForSequenceClassification.from_pretrained(model),
                                               processor=LGSRRProcessor.from_pretrained(model), device="cpu")
    expected = pipe(EXAMPLE)
    assert label == expected["label"]
    assert float(score) == pytest.approx(expected["score"], abs=1e-3)
    # an empty description is refused with the pipeline's message, shown on the page
    box = browser.find_element(By.CSS_SELECTOR, "#description-actions textarea")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(Keys.BACKSPACE)  # typed, so the app sees the change (clear() fires no input event)
    browser.find_element(By.CSS_SELECTOR, "#predict").click()
    WebDriverWait(browser, 30).until(lambda d: "the description is empty" in d.find_element(By.TAG_NAME, "body").text)
