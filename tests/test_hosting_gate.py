"""Gradio's own routes, which run before any handler, as an outsider meets them: stopping another person's stream,
reading the API from the login page, guessing passwords, reading another app's cached files, and telling from a
refusal where the data lives. Real apps (space and password mode) served by ``python app.py``, plain HTTP."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from medcot_ui.hosting.throttle import FREE_FAILURES
from conftest import wait_for
from outside_caller import endpoint_args, http, multipart, session_cookie
from test_hosting_api import PASSWORD_ENV, PASSWORDS, SPACE_ENV, app_factory, sample_file  # noqa: F401

STOP_ROUTES = {"/gradio_api/cancel": {"session_hash": "someone-elses-session", "fn_index": 0, "event_id": "e1"},
               "/gradio_api/reset": {"event_id": "e1"}}
JSON = {"Content-Type": "application/json"}


def sign_in(url: str, username: str, password: str, form: str = "urlencoded",
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    """POST Gradio's login form (``form``: urlencoded or multipart); (status, headers that carry the login cookie
    on later requests) or, refused, (status, the answer's headers, names in lower case)."""
    if form == "multipart":
        data, kind = form_data({"username": username, "password": password})
    else:
        data, kind = f"username={username}&password={password}".encode(), "application/x-www-form-urlencoded"
    req = urllib.request.Request(url + "/login", data=data, method="POST",
                                 headers={"Content-Type": kind, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            cookies = [c.split(";", 1)[0] for c in resp.headers.get_all("Set-Cookie") or []]
            return resp.status, {"Cookie": "; ".join(cookies)}
    except urllib.error.HTTPError as exc:
        return exc.code, {name.lower(): value for name, value in exc.headers.items()}


def form_data(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = "medcot-login-boundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
             for name, value in fields.items()]
    return "".join(parts).encode() + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def post_json(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    return http(url, json.dumps(body).encode(), {**JSON, **(headers or {})})


# ---- stopping events -----------------------------------------------------------------------------------

def test_password_mode_cancel_and_reset_ask_anonymous_callers_to_sign_in_like_every_other_route(app_factory):
    app = app_factory("password", PASSWORD_ENV)
    for route, body in STOP_ROUTES.items():
        status, answer = post_json(app.url + route, body)
        assert status == 401 and b"Not authenticated" in answer, (route, status, answer)
    status, alice = sign_in(app.url, "alice", PASSWORDS["alice"])
    assert status == 200
    status, answer = post_json(app.url + "/gradio_api/cancel", STOP_ROUTES["/gradio_api/cancel"], alice)
    assert (status, answer) == (403, b"No such running event in this session.")
    assert post_json(app.url + "/gradio_api/reset", STOP_ROUTES["/gradio_api/reset"], alice)[0] == 200


def test_space_mode_only_the_caller_who_started_a_stream_can_stop_it(app_factory, sample_file):
    app = app_factory("space", SPACE_ENV)
    for route, body in STOP_ROUTES.items():
        status, answer = post_json(app.url + route, body)
        assert status == 403 and b"Sign in" in answer, (route, status, answer)
    alice = Client(app.url, verbose=False, headers=session_cookie("alice"))
    fn_index = next(d["id"] for d in alice.config["dependencies"] if d.get("api_name") == "compare")
    job = alice.submit(*endpoint_args(alice, "/compare", sample_file), api_name="/compare")
    event_id = _wait_for_event_id(job)
    theirs = {"session_hash": alice.session_hash, "fn_index": fn_index, "event_id": event_id}
    # Another allowed user who learnt alice's session hash, but not her event, stops nothing.
    bob = session_cookie("bob", ("medlab",))
    status, _ = post_json(app.url + "/gradio_api/cancel", {**theirs, "event_id": "guessed"}, bob)
    assert status == 403
    assert post_json(app.url + "/gradio_api/cancel", theirs, session_cookie("alice"))[0] == 200
    wait_for(job.done, timeout=60, what="alice's stream to end")


def _wait_for_event_id(job: Any) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (event_id := getattr(job.communicator, "event_id", None)) is not None:
            return event_id
        time.sleep(0.05)
    raise AssertionError("the compare stream never joined the queue")


# ---- what a caller who is not signed in can learn ------------------------------------------------------

def test_the_login_page_lists_no_api_endpoints(app_factory):
    app = app_factory("password", PASSWORD_ENV)
    status, page = http(app.url + "/")
    assert status == 200 and b'"auth_required":true' in page.replace(b" ", b"")
    assert b'window.gradio_api_info = {"named_endpoints": {}, "unnamed_endpoints": {}};' in page
    assert b"launch_training" not in page and b"delete_run" not in page
    _, alice = sign_in(app.url, "alice", PASSWORDS["alice"])
    status, page = http(app.url + "/", headers=alice)
    assert status == 200 and b"launch_training" in page  # signed in: the app as usual


def _file_answers(url: str, home: Path, headers: dict[str, str] | None = None) -> dict[str, tuple[int, bytes]]:
    """What the file route answers for paths in the data directory (existing or not) and elsewhere."""
    targets = [home / "runs.db", home / "uploads" / "no-such-upload.jsonl", Path("/etc/passwd"),
               Path("/no/such/file.txt")]
    return {str(t): http(f"{url}/gradio_api/file={t}", headers=headers) for t in targets}


def test_a_refused_file_answers_the_same_inside_the_data_folder_as_anywhere_else(app_factory):
    password = app_factory("password", PASSWORD_ENV)
    answers = _file_answers(password.url, password.home)
    assert {answer for answer in answers.values()} == {answers["/etc/passwd"]}, answers
    assert answers["/etc/passwd"][0] == 401
    space = app_factory("space", SPACE_ENV)
    for who in ({}, session_cookie("alice")):
        for target, (status, body) in _file_answers(space.url, space.home, who).items():
            assert (status, json.loads(body)) == (403, {"detail": f"File not allowed: {target}."}), (who, target)


def test_two_apps_on_one_machine_do_not_serve_each_others_cached_files(app_factory):
    space, password = app_factory("space", SPACE_ENV), app_factory("password", PASSWORD_ENV)
    body, headers = multipart("rows.jsonl", b'{"Question": "only-for-the-space-app"}\n')
    status, answer = http(space.url + "/gradio_api/upload", body, {**headers, **session_cookie("alice")})
    assert status == 200, answer
    cached = Path(json.loads(answer)[0])
    assert cached.is_relative_to(space.home), "each app caches inside its own data directory"
    status, answer = http(f"{space.url}/gradio_api/file={cached}", headers=session_cookie("alice"))
    assert status == 200 and b"only-for-the-space-app" in answer
    _, alice = sign_in(password.url, "alice", PASSWORDS["alice"])
    status, answer = http(f"{password.url}/gradio_api/file={cached}", headers=alice)
    assert status == 403 and b"only-for-the-space-app" not in answer


# ---- guessing passwords --------------------------------------------------------------------------------

def test_fifty_wrong_passwords_at_once_are_mostly_refused_unchecked_and_the_right_one_works_after_the_wait(
        app_factory):
    app = app_factory("password", PASSWORD_ENV)
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda i: sign_in(app.url, "alice", f"guess-{i}"), range(50)))
    statuses = [status for status, _ in answers]
    checked = statuses.count(400)
    assert 1 <= checked <= FREE_FAILURES + 1, statuses  # a try may slip in as the first wait ends, no more
    assert statuses.count(429) == 50 - checked, statuses
    waits = [int(headers["retry-after"]) for status, headers in answers if status == 429]
    assert all(wait >= 1 for wait in waits)
    status, headers = sign_in(app.url, "alice", PASSWORDS["alice"])
    if status == 429:  # still waiting: not even the right password is checked before the wait is over
        time.sleep(int(headers["retry-after"]) + 0.2)
        status, _ = sign_in(app.url, "alice", PASSWORDS["alice"])
    assert status == 200
    assert sign_in(app.url, "mallory", "wrong")[0] == 400, "a success starts the client afresh"


def test_wrong_passwords_sent_as_multipart_or_with_the_name_twice_are_throttled_like_the_login_form(app_factory):
    app = app_factory("password", PASSWORD_ENV)
    statuses = []
    for i in range(12):  # the guesser signs in to an account of its own now and then: that clears only its own
        statuses.append(sign_in(app.url, "carol", f"guess-{i}", form="multipart")[0])
        if i % 3 == 2:
            assert sign_in(app.url, "mallory", PASSWORDS["mallory"])[0] == 200
    assert statuses.count(400) <= FREE_FAILURES + 1 and statuses[-1] == 429, statuses
    # Gradio checks the last of two names; the gate counts that one too, not the first.
    twice = urllib.request.Request(app.url + "/login", data=b"username=nobody&username=carol&password=x",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(twice, timeout=60)
    assert refused.value.code == 429


def test_behind_a_proxy_one_guesser_locks_neither_other_accounts_nor_the_owners_own_browser(app_factory):
    app = app_factory("password", PASSWORD_ENV)  # every caller comes from 127.0.0.1, as behind such a proxy
    status, alices_browser = sign_in(app.url, "alice", PASSWORDS["alice"])
    assert status == 200
    statuses = [sign_in(app.url, "alice", f"guess-{i}")[0] for i in range(12)]
    assert statuses[-1] == 429, statuses
    status, headers = sign_in(app.url, "alice", PASSWORDS["alice"])
    assert status == 429, "a browser new to alice waits"
    assert sign_in(app.url, "alice", PASSWORDS["alice"], headers=alices_browser)[0] == 200
    assert sign_in(app.url, "mallory", PASSWORDS["mallory"])[0] == 200, "another account signs in at once"
    time.sleep(int(headers["retry-after"]) + 0.2)
    assert sign_in(app.url, "alice", PASSWORDS["alice"])[0] == 200, "after the wait, the right password works"


def test_the_app_says_where_it_listens_and_how_to_let_people_in_never_to_set_share_true(app_factory):
    app = app_factory("password", PASSWORD_ENV)
    printed = Path(app.proc.log_path).read_text(errors="replace")
    port = app.url.rsplit(":", 1)[1]
    assert f"* Running on local URL:  http://127.0.0.1:{port} (password mode: anyone who can reach" in printed
    assert "'Access modes' in README.md" in printed
    assert "share=True" not in printed and "public link" not in printed, printed


@pytest.mark.browser
def test_a_person_still_signs_in_from_the_login_page(app_factory, browser):
    app = app_factory("password", PASSWORD_ENV)
    page = browser.new_page()
    page.goto(app.url)
    page.get_by_label("username").fill("alice")
    page.get_by_label("password").fill(PASSWORDS["alice"])
    page.get_by_role("button", name="Login").click()
    page.get_by_role("tab", name="Runs").wait_for(timeout=60_000)
    page.close()
