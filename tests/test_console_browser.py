"""The web console in a real browser: Debian's headless Chromium driven by Playwright against a real `tuneforge serve`.

    sign in -> catalog -> create a fine-tuning job through the form (data checked first) -> Completed, loss chart drawn
    -> its custom model -> playground: "tiny" and the custom model side by side, streamed -> markup stays text
    -> a read-only key sees no create buttons and its POSTs (forged or not) are refused -> sign out

Playwright's own browser download does not work here: the tests use the `chromium` package (installed with apt-get
when missing and allowed, else they FAIL saying how; they never skip). A screenshot of each page is saved under the
module's tmp directory, or TUNEFORGE_SCREENSHOTS; the paths are printed (pytest -s shows them). The tests run in file order and share one
browser and one server.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.api_server import create_key

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture fails each test with the instruction
    expect = None

INSTALL = ("the browser tests need Debian's chromium and Playwright's Python package: "
           "`apt-get install -y chromium` and `pip install -e '.[dev]'` (playwright)")
JOB, MODEL = "console-job", "console-model"
MARKUP = '<img src=x onerror="window.__pwned = 1">'  # runs if any page puts it in as HTML


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        done = subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, text=True, timeout=600)
        if done.returncode != 0:  # the package lists may be missing on a fresh machine
            subprocess.run(["apt-get", "update"], capture_output=True, timeout=600)
            subprocess.run(["apt-get", "install", "-y", "chromium"], capture_output=True, timeout=600)
        found = shutil.which("chromium")
    if found is None:
        pytest.fail(f"chromium is not installed and could not be installed here: {INSTALL}")
    return found


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"playwright is not installed: {INSTALL}")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium_path(), headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tmp directory, or TUNEFORGE_SCREENSHOTS (kept: pytest removes old tmp directories; CI uploads this one)."""
    chosen = os.environ.get("TUNEFORGE_SCREENSHOTS")
    if chosen:
        Path(chosen).mkdir(parents=True, exist_ok=True)
        return Path(chosen)
    return tmp_path_factory.mktemp("console-screenshots")


@pytest.fixture(scope="module")
def page(browser, server):
    context = browser.new_context(base_url=server.url, viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(30_000)
    opened = context.new_page()
    opened.errors = []  # the pages' own JavaScript errors and CSP refusals, checked by the last test
    opened.on("console", lambda message: opened.errors.append(message.text) if message.type == "error" else None)
    opened.on("pageerror", lambda error: opened.errors.append(str(error)))
    yield opened
    context.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("console-data")
    records = [{"prompt": f"Question {i}: what is {i} plus {i}?", "completion": f" {2 * i}."} for i in range(6)]
    training, validation = folder / "train.jsonl", folder / "valid.jsonl"
    training.write_text("".join(json.dumps(r) + "\n" for r in records))
    validation.write_text("".join(json.dumps(r) + "\n" for r in records[:2]))
    return training, validation


def snap(page, shots: Path, name: str) -> None:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"screenshot: {path}")


def sign_in(page, key: tuple[str, str]) -> None:
    page.goto("/console/")
    assert "/console/signin" in page.url  # signed out: sent to sign in
    page.fill("input[name=access_key_id]", key[0])
    page.fill("input[name=secret]", key[1])
    page.click("#signin-form button[type=submit]")
    page.wait_for_url("**/console/")


def test_sign_in_and_overview(page, server, shots) -> None:
    sign_in(page, server.key)
    assert page.text_content("#who").startswith(server.key[0])
    assert "No job is running" in page.text_content("main")
    snap(page, shots, "overview")


def test_catalog_shows_the_tiny_model(page, shots) -> None:
    page.goto("/console/models")
    assert page.locator("#models-table td b", has_text="tiny").count() >= 1
    page.fill("#model-filter input[name=q]", "no-such-model")
    assert page.locator("#models-table tr:not([hidden])").count() == 1  # the header row alone
    page.fill("#model-filter input[name=q]", "tiny")
    snap(page, shots, "models")


def test_create_a_job_through_the_form_and_watch_it_complete(page, shots, data) -> None:
    training, validation = data
    page.goto("/console/jobs")
    assert "No customization jobs" in page.text_content("main")
    page.click("#create-job")
    page.goto("/console/models")
    page.click("#models-table a[href$='/jobs/new?base=tiny']")  # the catalog's link preselects the base model
    assert page.eval_on_selector("#base-model", "e => e.value") == "tiny"
    page.fill("input[name=job_name]", JOB)
    page.fill("input[name=custom_model_name]", MODEL)
    page.select_option("#base-model", "tiny")
    page.fill("input[name=training_data]", str(training))
    page.fill("input[name=validation_data]", str(validation))
    page.fill("input[name='hp.epochCount']", "2")
    page.fill("input[name='hp.batchSize']", "2")
    page.fill("input[name='hp.maxSequenceLength']", "64")
    assert page.text_content("small[data-range=epochCount]") == "1 to 10"
    # an uploaded file with bad lines: the validator's report, line by line, before anything is submitted
    bad = training.parent / "bad.jsonl"
    bad.write_text('{"prompt": "fine", "completion": " yes"}\nnot json\n{"prompt": "no completion"}\n')
    page.set_input_files("input[name=training_file]", str(bad))
    page.click("#validate")
    page.wait_for_selector("#report ol li")
    problems = page.locator("#report ol li").all_text_contents()
    assert len(problems) == 2 and problems[0].startswith("line 2") and problems[1].startswith("line 3"), problems
    snap(page, shots, "job-create-report")
    page.set_input_files("input[name=training_file]", [])
    page.click("#validate")
    page.wait_for_selector("#report p.ok")
    assert "6 records" in page.text_content("#report")
    snap(page, shots, "job-create")
    page.click("#submit-job")
    page.wait_for_url(f"**/console/jobs/{JOB}")
    expect(page.locator("#job-status")).to_have_text("Completed", timeout=240_000)
    points = page.get_attribute("#loss-chart polyline.train", "points")
    assert points and len(points.split()) >= 2  # 6 records, batch 2, 2 epochs: 6 steps
    assert page.locator("#loss-chart circle.valid").count() >= 1
    assert page.text_content("#job-progress") is not None and page.eval_on_selector("#job-progress", "e => e.value") == 100
    assert "epochCount" in page.text_content("#hyperparameters-table")
    assert page.locator("#stop-form").is_hidden()
    snap(page, shots, "job")


def test_the_custom_model_page(page, shots) -> None:
    page.click(f"#job-model a:text('{MODEL}')")
    page.wait_for_url(f"**/console/custom-models/{MODEL}")
    assert page.text_content("#model-name").startswith(MODEL)
    assert JOB in page.text_content("main") and "tiny" in page.text_content("main")
    snap(page, shots, "custom-model")
    page.goto("/console/custom-models")
    assert page.locator("#custom-models-table a", has_text=MODEL).count() == 1
    snap(page, shots, "custom-models")


def test_playground_compares_base_and_custom_side_by_side(page, shots) -> None:
    page.goto(f"/console/playground?model=tiny&model={MODEL}")
    page.fill("input[name=max_tokens]", "12")
    page.fill("#prompt", f"What is 2 plus 2? {MARKUP}")
    page.click("#send")
    for pane in (0, 1):
        done = page.locator(f"[data-pane='{pane}'] .assistant.done")
        done.wait_for(timeout=120_000)
        tokens = page.text_content(f"[data-pane='{pane}'] .tokens")
        assert "completion tokens" in tokens, page.text_content(f"[data-pane='{pane}']")
        assert int(tokens.split(" prompt tokens")[0]) > 0
        # the user's markup is text in the transcript, not an element
        assert page.text_content(f"[data-pane='{pane}'] .user") == f"What is 2 plus 2? {MARKUP}"
        assert page.locator(f"[data-pane='{pane}'] .transcript img").count() == 0
    assert page.locator("[data-pane='2'] .assistant").count() == 0  # the third pane had no model
    assert page.evaluate("window.__pwned") is None
    snap(page, shots, "playground")


def test_deploy_then_compare_base_and_deployment_and_delete_is_refused(page, shots) -> None:
    page.goto(f"/console/custom-models/{MODEL}")
    assert "Not deployed" in page.text_content("main")
    page.fill("#deploy-form input[name=deployment_name]", "console-deployment")
    page.click("#deploy")
    page.wait_for_selector("#deployments-table")
    assert "Active" in page.text_content("#deployments-table")
    page.once("dialog", lambda dialog: dialog.accept())  # the "Delete ...?" confirmation
    page.click("#delete-model")
    page.wait_for_selector("#error-message")
    assert "served by custom model deployment(s) console-deployment" in page.text_content("#error-message")
    snap(page, shots, "delete-refused")
    page.goto(f"/console/custom-models/{MODEL}")
    page.click("#deployments-table a:text('compare with the base model')")
    page.wait_for_url("**/console/playground?**")
    page.fill("input[name=max_tokens]", "8")
    page.fill("#prompt", "What is 3 plus 3?")
    page.click("#send")
    for pane in (0, 1):
        page.locator(f"[data-pane='{pane}'] .assistant.done").wait_for(timeout=120_000)
        assert "completion tokens" in page.text_content(f"[data-pane='{pane}'] .tokens"), page.text_content(f"[data-pane='{pane}']")
    assert page.eval_on_selector("[data-pane='1'] .pane-model", "e => e.selectedOptions[0].textContent") == "console-deployment"
    snap(page, shots, "playground-deployment")
    page.goto("/console/")
    assert "console-deployment" in page.text_content("main")  # the overview lists it
    snap(page, shots, "overview-after")


def test_provisioned_throughput_create_and_delete(page, shots) -> None:
    page.goto("/console/provisioned")
    assert "No provisioned throughput" in page.text_content("main")
    page.fill("#provision-form input[name=name]", "console-pt")
    page.select_option("#provision-form select[name=model]", "tiny")
    page.click("#provision")
    page.wait_for_url("**/console/provisioned")
    expect(page.locator("#provisioned-table td.status-InService")).to_have_count(1, timeout=120_000)  # the page reloads itself
    snap(page, shots, "provisioned")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#provisioned-table button.danger")
    page.wait_for_selector("text=No provisioned throughput")


def test_stop_a_running_job(page, shots, data) -> None:
    long = data[0].parent / "long.jsonl"
    long.write_text("".join(json.dumps({"prompt": f"Count to {i}.", "completion": " " + " ".join(map(str, range(1 + i % 9)))}) + "\n"
                            for i in range(200)))
    page.goto("/console/jobs/new")
    page.fill("input[name=job_name]", "console-stopped")
    page.select_option("#base-model", "tiny")
    page.set_input_files("input[name=training_file]", str(long))  # uploaded: kept by the files service
    page.fill("input[name='hp.epochCount']", "10")
    page.fill("input[name='hp.batchSize']", "1")
    page.fill("input[name='hp.maxSequenceLength']", "64")
    page.click("#submit-job")  # 2,000 steps: it is still training when stopped
    page.wait_for_url("**/console/jobs/console-stopped")
    expect(page.locator("#job-step")).to_have_text(re.compile(r"^step "), timeout=120_000)
    page.click("#stop-job")
    expect(page.locator("#job-status")).to_have_text("Stopped", timeout=120_000)
    assert "/files/" in page.text_content("main")  # it trained on the stored upload
    snap(page, shots, "job-stopped")


def test_markup_in_a_name_is_shown_as_text(page, shots) -> None:
    page.goto(f"/console/jobs/{MARKUP}")
    assert MARKUP in page.text_content("#error-message")
    assert page.locator("main img").count() == 0 and page.evaluate("window.__pwned") is None
    snap(page, shots, "error-page")


def test_a_read_only_key_sees_no_create_buttons_and_is_refused(browser, server, shots) -> None:
    context = browser.new_context(base_url=server.url)
    try:
        viewer = context.new_page()
        sign_in(viewer, create_key(server.home, "--read-only", "--name", "viewer", env=server.env))
        viewer.goto("/console/jobs")
        assert viewer.locator(f"#jobs-table a", has_text=JOB).count() == 1  # reads are allowed
        assert viewer.locator("#create-job").count() == 0
        viewer.goto(f"/console/custom-models/{MODEL}")
        assert viewer.locator("#delete-model").count() == 0
        snap(viewer, shots, "read-only")
        token = viewer.get_attribute('meta[name="csrf-token"]', "content")
        forged = viewer.request.post(f"{server.url}/console/custom-models/{MODEL}/delete", form={"csrf": "forged"})
        assert forged.status == 403 and "CSRF token" in forged.text()
        refused = viewer.request.post(f"{server.url}/console/custom-models/{MODEL}/delete", form={"csrf": token})
        assert refused.status == 403 and "is read-only" in refused.text()
    finally:
        context.close()


def test_the_audit_log_shows_the_console_actions(page, server, shots) -> None:
    page.goto("/console/audit?service=console&operation=CreateModelCustomizationJob")
    rows = page.locator("#audit-table tr").all_text_contents()[1:]
    assert rows and all(server.key[0] in r and "model-customization-job/" in r for r in rows), rows  # who, and the ARN
    snap(page, shots, "audit")
    page.goto("/console/keys")
    assert page.locator("#keys-table td", has_text="viewer").count() == 1
    snap(page, shots, "keys")


def test_sign_out(page, shots) -> None:
    page.goto("/console/")
    page.click("#signout")
    page.wait_for_url("**/console/signin")
    page.goto("/console/jobs")
    assert "/console/signin" in page.url
    snap(page, shots, "signin")


def _timings(page) -> dict[str, float]:
    """Milliseconds from navigation start: first contentful paint and DOMContentLoaded (the page's script has run)."""
    # the paint entry is recorded once a frame is presented: wait for it (up to 2 s), buffered so an early one counts
    return page.evaluate("""() => new Promise((done) => {
        const nav = performance.getEntriesByType('navigation')[0];
        const finish = (paint) => done({firstPaint: paint ? paint.startTime : -1, domReady: nav.domContentLoadedEventEnd});
        new PerformanceObserver((list) => {
            const paint = list.getEntriesByName('first-contentful-paint')[0];
            if (paint) finish(paint);
        }).observe({type: 'paint', buffered: true});
        setTimeout(() => finish(null), 2000);
    })""")


def test_page_speed_with_1000_jobs_and_10000_metric_points(browser, server, shots) -> None:
    """The jobs list with 1,000 jobs (one page of 50 shown) and a job page with 10,000 training steps (drawn as at most
    500 points): both usable within seconds even on 2 shared cores. Prints the figures."""
    import time

    from sqlalchemy import select

    from tuneforge.db import open_database, session_scope, utcnow
    from tuneforge.db.tables import CustomizationJobRow
    from tuneforge.ids import new_id
    from tuneforge.settings import load_settings
    from tuneforge.training.metrics import TRAINING_COLUMNS, TRAINING_CSV

    sessions = open_database(load_settings(home=server.home, database_url="").database_url)
    with sessions() as session:
        template = session.scalars(select(CustomizationJobRow).where(CustomizationJobRow.job_name == JOB)).one()
        columns = {c.key: getattr(template, c.key) for c in CustomizationJobRow.__table__.columns}
    rows = []
    for i in range(1000):
        job_id = new_id()
        rows.append(CustomizationJobRow(**{**columns, "job_id": job_id, "job_arn": columns["job_arn"].rsplit("/", 1)[0] + "/" + job_id,
                                           "job_name": f"speed-{i:04d}", "client_request_token": None, "pid": None,
                                           "work_dir": str(server.home / "jobs" / job_id), "created_at": utcnow(), "updated_at": utcnow()}))
    with session_scope(sessions) as session:
        session.add_all(rows)
    metrics = Path(rows[-1].work_dir) / "train" / TRAINING_CSV
    metrics.parent.mkdir(parents=True)
    metrics.write_text(",".join(TRAINING_COLUMNS) + "\n" + "".join(f"{s},{s // 1000},{3 / (1 + s / 500):.6f},1.0\n" for s in range(10_000)))

    context = browser.new_context(base_url=server.url, viewport={"width": 1400, "height": 1000})
    try:
        viewer = context.new_page()
        sign_in(viewer, server.key)
        started = time.perf_counter()
        viewer.goto("/console/jobs")
        listed = (time.perf_counter() - started) * 1000, _timings(viewer)
        assert viewer.locator("#jobs-table tr").count() == 51 and viewer.locator("a", has_text="Next page").count() == 1
        snap(viewer, shots, "jobs-1000")
        started = time.perf_counter()
        viewer.goto(f"/console/jobs/{rows[-1].job_name}")
        viewer.wait_for_selector("#loss-chart polyline.train")
        drawn = (time.perf_counter() - started) * 1000, _timings(viewer)
        assert len(viewer.get_attribute("#loss-chart polyline.train", "points").split()) == 500
        snap(viewer, shots, "job-10000-points")
    finally:
        context.close()
    for name, (usable, t) in (("jobs list, 1,000 jobs", listed), ("job page, 10,000 metric points", drawn)):
        print(f"page speed: {name}: first paint {t['firstPaint']:.0f} ms, DOM ready {t['domReady']:.0f} ms, "
              f"usable (loaded{', chart drawn' if 'job page' in name else ''}) {usable:.0f} ms")
    assert listed[0] < 10_000 and drawn[0] < 10_000  # generous: 2 shared cores; the figures printed are what matters


def test_no_page_had_a_script_error_or_broke_the_content_security_policy(page) -> None:
    # the error page's 404 and the refused POSTs are logged as failed loads; anything else is a bug
    assert [e for e in page.errors if "status of 40" not in e] == []
