"""The web console's sign-in, session cookie and CSRF checks, in process (Starlette's TestClient, no browser, no model).

The browser tests (tests/test_console_browser.py) drive the pages against a real `tuneforge serve`; these check the
rules fast: a signed HttpOnly SameSite=Lax cookie, a forged POST refused, a read-only key refused, sign-out, expiry.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tuneforge.api.app import build_app
from tuneforge.console import session as console_session
from tuneforge.console.pages import downsample
from tuneforge.db import open_database
from tuneforge.security.audit import AuditLog
from tuneforge.security.keys import AccessKeys
from tuneforge.settings import load_settings


@pytest.fixture
def app(tmp_path: Path):
    settings = load_settings(home=tmp_path / "home", database_url="")
    sessions = open_database(settings.database_url)
    keys = AccessKeys(settings, sessions)
    full, read_only = keys.create(name="full"), keys.create(name="viewer", read_only=True)
    with TestClient(build_app(settings), base_url="http://127.0.0.1") as client:
        yield client, full, read_only, AuditLog(sessions)


def _csrf(html: str) -> str:
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)


def _sign_in(client: TestClient, key) -> None:
    page = client.get("/console/signin")
    reply = client.post("/console/signin", data={"csrf": _csrf(page.text), "access_key_id": key.access_key_id,
                                                 "secret": key.secret_access_key}, follow_redirects=False)
    assert reply.status_code == 303, reply.text


def test_signed_out_visitors_are_sent_to_sign_in(app) -> None:
    client, *_ = app
    reply = client.get("/console/jobs", follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"].startswith("/console/signin")
    assert client.get("/console", follow_redirects=False).headers["location"] == "/console/"
    assert client.get("/console/api/jobs/x").status_code == 401  # the pages' fetches get JSON, not a redirect


def test_sign_in_sets_a_signed_http_only_lax_cookie(app) -> None:
    client, full, _, audit = app
    page = client.get("/console/signin")
    reply = client.post("/console/signin", data={"csrf": _csrf(page.text), "access_key_id": full.access_key_id,
                                                 "secret": full.secret_access_key}, follow_redirects=False)
    cookie = reply.headers["set-cookie"]
    assert console_session.COOKIE in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/console" in cookie
    assert f"Max-Age={console_session.MAX_AGE}" in cookie
    assert full.secret_access_key not in cookie  # the cookie names the key; the secret stays with the user
    overview = client.get("/console/")
    assert overview.status_code == 200 and full.access_key_id in overview.text
    policy = overview.headers["content-security-policy"]
    assert "script-src" not in policy and "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    event = audit.recent(1)[0]
    assert (event.service, event.operation, event.access_key_id, event.status_code) == ("console", "SignIn", full.access_key_id, 303)


def test_wrong_secret_and_forged_sign_in_are_refused(app) -> None:
    client, full, _, _ = app
    page = client.get("/console/signin")
    wrong = client.post("/console/signin", data={"csrf": _csrf(page.text), "access_key_id": full.access_key_id, "secret": "x"})
    assert wrong.status_code == 403 and "do not match an active access key" in wrong.text
    forged = client.post("/console/signin", data={"access_key_id": full.access_key_id, "secret": full.secret_access_key})
    assert forged.status_code == 403 and "CSRF token" in forged.text


def test_a_forged_post_is_refused(app) -> None:
    client, full, _, audit = app
    _sign_in(client, full)
    for data in ({}, {"csrf": "not-the-token"}):
        reply = client.post("/console/jobs", data={"job_name": "forged", **data})
        assert reply.status_code == 403 and "CSRF token" in reply.text
    assert client.post("/console/api/chat", json={"model": "x"}, headers={"X-CSRF-Token": "nope"}).status_code == 403
    event = audit.recent(1)[0]
    assert (event.service, event.operation, event.status_code) == ("console", "CreateModelCustomizationJob", 403)
    # a token from another session is no good either
    other = TestClient(client.app, base_url="http://127.0.0.1")
    stolen = _csrf(other.get("/console/signin").text)
    assert client.post("/console/jobs", data={"csrf": stolen}).status_code == 403


def test_read_only_keys_see_no_mutating_controls_and_are_refused(app) -> None:
    client, _, read_only, audit = app
    _sign_in(client, read_only)
    jobs = client.get("/console/jobs")
    assert "(read-only)" in jobs.text and 'id="create-job"' not in jobs.text
    token = _csrf(jobs.text)
    reply = client.post("/console/jobs", data={"csrf": token, "job_name": "x"})
    assert reply.status_code == 403 and "is read-only" in reply.text
    assert client.post("/console/custom-models/m/delete", data={"csrf": token}).status_code == 403
    event = audit.recent(1)[0]
    assert (event.operation, event.access_key_id, event.status_code) == ("DeleteCustomModel", read_only.access_key_id, 403)
    # checking data reads a file on the server's host: not for read-only keys either
    assert client.post("/console/api/validate", data={"training_data": "/etc/hostname"}, headers={"X-CSRF-Token": token}).status_code == 403


def test_sign_out_and_expiry(app, monkeypatch: pytest.MonkeyPatch) -> None:
    client, full, _, _ = app
    _sign_in(client, full)
    page = client.get("/console/")
    reply = client.post("/console/signout", data={"csrf": _csrf(page.text)}, follow_redirects=False)
    assert reply.status_code == 303 and reply.headers["location"] == "/console/signin"
    assert client.get("/console/", follow_redirects=False).status_code == 303
    _sign_in(client, full)
    assert client.get("/console/", follow_redirects=False).status_code == 200
    monkeypatch.setattr(console_session, "MAX_AGE", -1)  # every session is now too old
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_a_tampered_cookie_is_no_session(app) -> None:
    client, full, _, _ = app
    _sign_in(client, full)
    value = client.cookies.get(console_session.COOKIE)
    client.cookies.clear()
    client.cookies.set(console_session.COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"), path="/console")
    assert client.get("/console/", follow_redirects=False).status_code == 303


def test_error_pages_are_words_and_names_are_text(app) -> None:
    client, full, _, _ = app
    _sign_in(client, full)
    reply = client.get("/console/jobs/<img src=x onerror=alert(1)>")
    assert reply.status_code == 404
    assert "<img src=x" not in reply.text and "&lt;img src=x onerror=alert(1)&gt;" in reply.text
    assert "no customization job" in reply.text
    assert client.get("/console/no/such/page").status_code == 404


def test_no_auth_servers_need_no_sign_in_but_check_csrf(tmp_path: Path) -> None:
    settings = load_settings(home=tmp_path / "home", database_url="").model_copy(update={"auth": False})
    with TestClient(build_app(settings), base_url="http://127.0.0.1") as client:
        page = client.get("/console/models")
        assert page.status_code == 200 and "authentication off" in page.text
        assert client.post("/console/jobs", data={"job_name": "x"}).status_code == 403


def test_downsample_keeps_the_ends() -> None:
    points = [(i, float(i)) for i in range(10_000)]
    kept = downsample(points)
    assert len(kept) == 500 and kept[0] == points[0] and kept[-1] == points[-1]
    assert downsample(points[:3]) == points[:3]


def test_a_bad_job_form_comes_back_with_the_reason_and_what_was_typed(app, tmp_path: Path) -> None:
    client, full, _, audit = app
    _sign_in(client, full)
    token = _csrf(client.get("/console/jobs/new").text)
    reply = client.post("/console/jobs", data={"csrf": token, "job_name": "my-job", "base_model": "no-such-model",
                                               "training_data": str(tmp_path / "missing.jsonl"), "hp.epochCount": "3"})
    assert reply.status_code == 404 and "no-such-model" in reply.text and 'id="error-message"' in reply.text
    assert 'value="my-job"' in reply.text and 'value="3"' in reply.text
    event = audit.recent(1)[0]
    assert (event.operation, event.status_code, event.resource) == ("CreateModelCustomizationJob", 404, "/console/jobs")


def test_tuneforge_console_prints_the_url_and_opens_a_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    from typer.testing import CliRunner

    from tuneforge.cli.main import app as cli

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)
    result = CliRunner().invoke(cli, ["console", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert opened == ["http://127.0.0.1:8123/console/"] and "http://127.0.0.1:8123/console/" in result.output


def test_an_upload_for_a_refused_job_is_not_kept(app) -> None:
    client, full, _, _ = app
    _sign_in(client, full)
    token = _csrf(client.get("/console/jobs/new").text)
    files = client.app.state.services.files
    record = b'{"prompt": "2 plus 2?", "completion": " 4"}\n'
    reply = client.post("/console/jobs", data={"csrf": token, "job_name": "up", "base_model": "no-such-model"},
                        files={"training_file": ("train.jsonl", record, "application/jsonl")})
    assert reply.status_code == 404 and "no-such-model" in reply.text
    assert files.list()[0] == []
    bad = client.post("/console/jobs", data={"csrf": token, "job_name": "up", "base_model": "no-such-model"},
                      files={"training_file": ("train.jsonl", b"not json\n", "application/jsonl")})
    assert bad.status_code == 400 and "train.jsonl is not a fine-tuning file" in bad.text  # checked before it is kept


def test_the_access_keys_and_audit_log_pages(app) -> None:
    client, full, read_only, _ = app
    _sign_in(client, read_only)  # reading them needs no write access
    keys = client.get("/console/keys")
    assert full.access_key_id in keys.text and "viewer" in keys.text and "read-only" in keys.text
    assert full.secret_access_key not in keys.text and read_only.secret_access_key not in keys.text
    audit = client.get("/console/audit", params={"service": "console", "operation": "signin", "key": read_only.access_key_id})
    assert audit.status_code == 200 and "SignIn" in audit.text and full.access_key_id not in audit.text
    assert "No audited events match" in client.get("/console/audit", params={"operation": "NoSuchOperation"}).text


def test_nothing_puts_data_into_the_page_as_html() -> None:
    """The rule of the console's JavaScript and templates, checked in the source: text, never markup."""
    root = Path(__file__).resolve().parent.parent / "tuneforge" / "console"
    script = "\n".join(line for line in (root / "static" / "console.js").read_text().splitlines() if not line.lstrip().startswith("//"))
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, f"console.js uses {sink}: build nodes and set textContent instead"
    for template in (root / "templates").glob("*.html"):
        text = template.read_text()
        assert "|safe" not in text.replace(" ", "") and "autoescape false" not in text, f"{template.name} turns escaping off"


def test_provisioned_throughput_forms_answer_in_words(app) -> None:
    client, full, _, audit = app
    _sign_in(client, full)
    page = client.get("/console/provisioned")
    assert "No provisioned throughput" in page.text
    token = _csrf(page.text)
    assert "model units must be a whole number" in client.post("/console/provisioned", data={
        "csrf": token, "name": "pt", "model": "x", "units": "two"}).text
    missing = client.post("/console/provisioned/nope/update", data={"csrf": token, "units": "2"})
    assert missing.status_code == 404 and "nope" in missing.text
    event = audit.recent(1)[0]
    assert (event.operation, event.status_code) == ("UpdateProvisionedModelThroughput", 404)
