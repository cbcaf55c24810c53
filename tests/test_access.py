"""Who may do what in each access mode, and how the server derives the caller (no browser, no network).

The Space-mode caller is derived from the session dict Gradio's OAuth callback stores (``oauth_info``); here it
is put into a real Starlette request scope, as Gradio's SessionMiddleware does, and read through ``guard``.
"""

from __future__ import annotations

import time

import gradio as gr
import pytest
from starlette.requests import Request

from conftest import fake_hf_token
from medcot_ui.hosting import serving as hosting, storage_status
from medcot_ui.hosting.access import (ACTIONS, MUTATING_ACTIONS, VIEW_ACTIONS, AccessDenied, Caller, action_for_endpoint,
                              allowed, caller_from_oauth, check, parse_users, password_auth, publish_token)
from medcot_ui.settings import get_settings, storage_is_persistent
from medcot_ui.tabs.guard import caller_of, guard

HOSTING_ENV = ("MEDCOT_AUTH_MODE", "MEDCOT_ALLOWED_USERS", "MEDCOT_ALLOWED_ORGS", "MEDCOT_PUBLIC_CHAT", "SPACE_ID",
               "SPACE_AUTHOR_NAME", "SYSTEM", "MEDCOT_USERS", "MEDCOT_HOST", "MEDCOT_AUTO_RESUME", "MEDCOT_PERSISTENT",
               "MEDCOT_BUCKET_DIR", "HF_TOKEN", "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OAUTH_SCOPES", "OPENID_PROVIDER_URL")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path):
    """Set hosting variables on a clean slate; returns a setter."""
    for name in HOSTING_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MEDCOT_HOME", str(tmp_path))

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


def oauth_info(username: str, orgs: tuple[str, ...] = (), expires_in: float = 3600) -> dict:
    """What gradio/oauth.py stores in request.session["oauth_info"] after the Hugging Face callback."""
    return {"access_token": f"hf_oauth_{username}_token", "token_type": "bearer", "scope": "openid profile",
            "expires_at": int(time.time() + expires_in),
            "userinfo": {"sub": "1", "name": username.title(), "preferred_username": username,
                         "profile": f"https://huggingface.co/{username}", "picture": "",
                         "orgs": [{"sub": "2", "name": o.title(), "preferred_username": o} for o in orgs]}}


def request_with_session(session: dict | None, username: str | None = None) -> gr.Request:
    """A gr.Request around a real Starlette request whose scope holds the session, as the middleware leaves it."""
    scope = {"type": "http", "method": "POST", "path": "/gradio_api/queue/join", "headers": [],
             "query_string": b""}
    if session is not None:
        scope["session"] = session
    return gr.Request(request=Request(scope), username=username)


# ---- local -----------------------------------------------------------------------------------------------

def test_local_mode_lets_anyone_on_this_machine_do_everything(env):
    for action in ACTIONS:
        check(Caller(), action)


def test_an_unknown_action_is_a_programming_error_not_a_refusal(env):
    with pytest.raises(ValueError, match="unknown action 'trian'"):
        check(Caller(username="alice"), "trian")


# ---- password --------------------------------------------------------------------------------------------

def test_password_mode_refuses_anonymous_callers_for_every_action(env):
    env(MEDCOT_AUTH_MODE="password", MEDCOT_USERS="alice:pw-alice-1")
    for action in ACTIONS:
        with pytest.raises(AccessDenied, match="Sign in"):
            check(Caller(), action)


def test_password_mode_allow_list_lets_others_look_but_not_change(env):
    env(MEDCOT_AUTH_MODE="password", MEDCOT_ALLOWED_USERS="Alice")
    for action in MUTATING_ACTIONS:
        check(Caller(username="alice"), action)
        with pytest.raises(AccessDenied, match="signed in as mallory.*MEDCOT_ALLOWED_USERS"):
            check(Caller(username="mallory"), action)
    for action in VIEW_ACTIONS:
        check(Caller(username="mallory"), action)


def test_password_mode_without_an_allow_list_trusts_every_account(env):
    env(MEDCOT_AUTH_MODE="password")
    for action in ACTIONS:
        check(Caller(username="bob"), action)


def test_password_accounts_parse_and_errors_never_echo_the_password(env):
    assert parse_users("alice:pw:with:colons, Bob:second\ncarol:third") == {
        "alice": "pw:with:colons", "bob": "second", "carol": "third"}
    with pytest.raises(ValueError) as exc:
        parse_users("alice:ok,bob-has-no-password-secret")
    assert "entry 2" in str(exc.value) and "secret" not in str(exc.value)


def test_password_auth_accepts_only_the_right_password(env):
    auth = password_auth("alice:correct horse,bob:battery")
    assert auth("alice", "correct horse") and auth("ALICE", "correct horse")
    assert not auth("alice", "battery") and not auth("nobody", "battery") and not auth("alice", "")


# ---- space -----------------------------------------------------------------------------------------------

def test_space_mode_anonymous_visitors_may_not_change_or_see_runs(env):
    env(MEDCOT_AUTH_MODE="space", MEDCOT_ALLOWED_USERS="alice")
    for action in ACTIONS:
        with pytest.raises(AccessDenied, match="Sign in with Hugging Face"):
            check(Caller(), action)


def test_space_mode_allow_list_by_user_or_organisation(env):
    env(MEDCOT_AUTH_MODE="space", MEDCOT_ALLOWED_USERS="alice", MEDCOT_ALLOWED_ORGS="MedLab")
    for action in ACTIONS:
        check(Caller(username="Alice"), action)
        check(Caller(username="bob", orgs=("medlab",)), action)
        with pytest.raises(AccessDenied, match="signed in as mallory, who is not on this Space's allow-list"):
            check(Caller(username="mallory", orgs=("other-org",)), action)


def test_space_mode_public_chat_opens_only_the_chat(env):
    env(MEDCOT_AUTH_MODE="space", MEDCOT_ALLOWED_USERS="alice", MEDCOT_PUBLIC_CHAT="1")
    check(Caller(), "compare")
    check(Caller(username="mallory"), "compare")
    for action in set(ACTIONS) - {"compare"}:
        assert not allowed(Caller(username="mallory"), action)
        assert not allowed(Caller(), action)


def test_space_without_an_allow_list_belongs_to_its_owner(env):
    env(MEDCOT_AUTH_MODE="space", SPACE_AUTHOR_NAME="DrOwner")
    assert allowed(Caller(username="drowner"), "train")
    assert allowed(Caller(username="colleague", orgs=("drowner",)), "train")  # a Space owned by an org
    assert not allowed(Caller(username="mallory"), "train")


def test_space_caller_comes_from_the_oauth_login_in_the_session(env):
    caller = caller_from_oauth(oauth_info("alice", orgs=("MedLab",)))
    assert (caller.username, caller.orgs, caller.token) == ("alice", ("medlab",), "hf_oauth_alice_token")
    assert "hf_oauth_alice_token" not in repr(caller)
    assert caller_from_oauth(oauth_info("alice", expires_in=-5)) == Caller()  # expired: signed out, as in Gradio
    assert caller_from_oauth(None) == Caller()
    assert caller_from_oauth({"access_token": "x", "userinfo": {}}) == Caller()


def test_guard_reads_the_session_in_space_mode_and_ignores_a_claimed_username(env):
    env(MEDCOT_AUTH_MODE="space", MEDCOT_ALLOWED_USERS="alice")
    assert guard(request_with_session({"oauth_info": oauth_info("alice")}), "train").username == "alice"
    # A username on the request (Gradio's password login) means nothing in space mode.
    with pytest.raises(gr.Error, match="Sign in with Hugging Face to start training"):
        guard(request_with_session({}, username="alice"), "train")
    with pytest.raises(gr.Error, match="mallory"):
        guard(request_with_session({"oauth_info": oauth_info("mallory")}), "delete")
    with pytest.raises(gr.Error):
        guard(None, "publish")


def test_guard_in_password_mode_uses_gradios_logged_in_user(env):
    env(MEDCOT_AUTH_MODE="password", MEDCOT_ALLOWED_USERS="alice")
    assert guard(request_with_session(None, username="alice"), "cancel").username == "alice"
    # An oauth_info planted in a session means nothing in password mode.
    assert caller_of(request_with_session({"oauth_info": oauth_info("alice")})) == Caller()
    with pytest.raises(gr.Error, match="signed in as bob"):
        guard(request_with_session(None, username="bob"), "cancel")


def test_publishing_uses_the_callers_own_token_never_the_servers(env):
    owner_token = fake_hf_token("ServerOwnersToken")
    env(HF_TOKEN=owner_token)
    env(MEDCOT_AUTH_MODE="space", MEDCOT_ALLOWED_USERS="alice")
    alice = caller_from_oauth(oauth_info("alice"))
    assert publish_token(alice, typed_token="hf_typedSomethingElse") == "hf_oauth_alice_token"
    with pytest.raises(AccessDenied, match="never with the Space's token"):
        publish_token(Caller(username="alice"))
    env(MEDCOT_AUTH_MODE="password")
    assert publish_token(Caller(username="bob"), "hf_BobsOwnToken") == "hf_BobsOwnToken"
    with pytest.raises(AccessDenied, match="server's token is never used"):
        publish_token(Caller(username="bob"))
    env(MEDCOT_AUTH_MODE="local")
    assert publish_token(Caller()) == owner_token  # locally the machine's owner is the caller


@pytest.mark.parametrize("api_name, action", [
    ("launch_training", "train"), ("enqueue_run", "train"), ("cancel_run", "cancel"), ("resume_run", "resume"),
    ("delete_run", "delete"), ("publish_to_hub", "publish"), ("export_adapter", "publish"),
    ("upload_dataset", "upload"), ("compare_stream", "compare"), ("ask_both", "compare"),
    ("refresh_runs", None), ("preview_rows", None), ("on_task_change", None), (None, None)])
def test_endpoint_names_map_to_actions(api_name, action):
    assert action_for_endpoint(api_name) == action


# ---- settings and launch checks ---------------------------------------------------------------------------

def test_the_mode_defaults_to_space_on_a_space_and_local_elsewhere(env):
    assert get_settings().auth_mode == "local" and get_settings().bind_host == "127.0.0.1"
    env(SPACE_ID="someone/medcot")
    s = get_settings()
    assert (s.auth_mode, s.bind_host, s.auto_resume, s.on_space) == ("space", "0.0.0.0", True, True)
    env(MEDCOT_AUTO_RESUME="0")
    assert not get_settings().auto_resume
    env(MEDCOT_AUTH_MODE="sesame")
    with pytest.raises(ValueError, match="MEDCOT_AUTH_MODE='sesame' is not a mode"):
        get_settings()


def test_the_app_refuses_to_start_in_an_unsafe_configuration(env):
    env(MEDCOT_HOST="0.0.0.0")
    assert "only listens on this machine" in hosting.problems(get_settings())[0]
    env(MEDCOT_AUTH_MODE="password", MEDCOT_USERS="")
    assert "needs accounts in MEDCOT_USERS" in hosting.problems(get_settings())[0]
    env(MEDCOT_AUTH_MODE="space", SPACE_ID="a/b")  # SYSTEM unset: Gradio would mock the sign-in
    found = " ".join(hosting.problems(get_settings()))
    assert "only works on a Hugging Face Space" in found and "hf_oauth: true" in found
    env(SYSTEM="spaces", OAUTH_CLIENT_ID="id", OAUTH_CLIENT_SECRET="s", OAUTH_SCOPES="openid profile",
        OPENID_PROVIDER_URL="https://huggingface.co")
    assert hosting.problems(get_settings()) == []


def test_launch_options_close_what_the_app_does_not_need(env):
    env(MEDCOT_AUTH_MODE="password", MEDCOT_USERS="alice:pw-alice-1")
    options = hosting.launch_options(get_settings())
    assert options["share"] is False and options["run_history"] is False and options["mcp_server"] is False
    assert options["_frontend"] is False, "Gradio's 3 s localhost probe can fail a start on a busy machine"
    assert options["enable_monitoring"] is False and options["allowed_paths"] == [str(get_settings().exports_dir)]
    assert options["max_file_size"] == 200 * 2**20 and callable(options["auth"])
    home = get_settings().home
    assert str(home / "runs.db") in options["blocked_paths"] and str(home / "uploads") in options["blocked_paths"]
    assert hosting.queue_options(get_settings())["api_open"] is False


MOUNTS = """overlay / overlay rw 0 0
tmpfs /tmp tmpfs rw 0 0
/dev/nvme1n1 /data ext4 rw 0 0
"""


def test_storage_is_persistent_only_on_a_real_volume():
    from pathlib import Path

    assert storage_is_persistent(Path("/home/me/medcot"), on_space=False, in_container=False, mounts_text="")
    assert storage_is_persistent(Path("/data/medcot"), on_space=True, in_container=True, mounts_text=MOUNTS)
    # A Space without persistent storage: /data is just a folder in the image's overlay.
    assert not storage_is_persistent(Path("/data/medcot"), on_space=True, in_container=True,
                                     mounts_text="overlay / overlay rw 0 0\n")
    assert not storage_is_persistent(Path("/tmp/medcot"), on_space=False, in_container=True, mounts_text=MOUNTS)
    assert not storage_is_persistent(Path("/app/medcot"), on_space=True, in_container=True, mounts_text=MOUNTS)
    assert not storage_is_persistent(Path("/database"), on_space=True, in_container=True, mounts_text=MOUNTS)


def test_the_storage_banner_says_what_to_do(env, tmp_path):
    env(MEDCOT_PERSISTENT="0", SPACE_ID="a/b", MEDCOT_BUCKET_DIR=str(tmp_path / "no-bucket-here"))
    found = storage_status.banner(get_settings())
    assert found.warning and "Attach a bucket to the Space as a volume" in found.text
    env(MEDCOT_BUCKET_DIR="off")  # no bucket and a data directory that does not survive: the old advice, updated
    assert "Attach a Storage Bucket to the Space as a volume at /data" in storage_status.banner(get_settings()).text
    env(MEDCOT_PERSISTENT="1", SPACE_ID="")  # a laptop: nothing to say
    assert storage_status.banner(get_settings()) is None
