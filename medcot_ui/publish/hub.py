"""Talk to the Hugging Face Hub with the user's token: who is this, may they write there, create, upload.

Every failure becomes a :class:`HubError` whose ``kind`` says what went wrong in the user's terms
(invalid token, no write access, name taken, Hub unreachable, upload did not finish) and whose message never
holds the token: huggingface_hub's and httpx's exceptions are caught here, their text scrubbed, and re-raised
without the original chained to them. The token lives only in this process, inside ``HfApi(token=...)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medcot_ui.errors import MedcotError
from medcot_ui.redact import scrub

# How long to wait for the Hub to answer at all before saying it cannot be reached. huggingface_hub's own HTTP
# client has no timeout, so without this check a black-holed network would hang the publish forever.
REACH_TIMEOUT_S = 5.0
TOKENS_PAGE = "https://huggingface.co/settings/tokens"
# Organisation roles that may create and push repositories.
WRITER_ROLES = {"admin", "write", "contributor"}
REPO_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class HubError(MedcotError, RuntimeError):
    """A Hub operation failed; ``kind`` is one of KINDS and the message is safe to show and store."""

    KINDS = ("invalid_token", "no_write_access", "name_taken", "unreachable", "upload_incomplete",
             "invalid_name", "hub_error")

    def __init__(self, kind: str, message: str):
        assert kind in self.KINDS, kind
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to and where it may write (from the Hub's whoami)."""

    name: str
    role: str  # the token's role: read, write, fineGrained, oauth ...
    writable_orgs: tuple[str, ...] = ()
    other_orgs: tuple[str, ...] = ()
    scoped_writes: tuple[str, ...] = ()  # fine-grained tokens: namespaces with repo.write
    raw_type: str = "user"

    def can_write(self, namespace: str) -> bool | None:
        """True / False when the Hub's answer decides it, None when only the Hub can tell (OAuth tokens)."""
        ns = namespace.lower()
        if self.role == "read":
            return False
        if self.role == "fineGrained":
            return ns in {s.lower() for s in self.scoped_writes}
        if self.role == "write":
            return ns == self.name.lower() or ns in {o.lower() for o in self.writable_orgs}
        if ns != self.name.lower() and ns not in {o.lower() for o in self.writable_orgs + self.other_orgs}:
            return False
        return None


def parse_whoami(info: dict[str, Any]) -> Identity:
    """An Identity from the JSON of ``/api/whoami-v2``."""
    orgs = info.get("orgs") or []
    writable = tuple(o["name"] for o in orgs if (o.get("roleInOrg") or "").lower() in WRITER_ROLES)
    others = tuple(o["name"] for o in orgs if o.get("name") and o["name"] not in writable)
    auth = info.get("auth") or {}
    token_info = auth.get("accessToken") or {}
    role = token_info.get("role") or auth.get("type") or "unknown"
    scoped: list[str] = []
    for scope in ((token_info.get("fineGrained") or {}).get("scoped") or []):
        entity = scope.get("entity") or {}
        if "repo.write" in (scope.get("permissions") or []) and entity.get("name"):
            scoped.append(entity["name"])
    return Identity(name=info.get("name") or "", role=role, writable_orgs=writable, other_orgs=others,
                    scoped_writes=tuple(scoped), raw_type=info.get("type") or "user")


def split_repo_id(repo_id: str) -> tuple[str, str]:
    """(namespace, name) of 'namespace/name', or raise HubError('invalid_name') saying what is wrong."""
    repo_id = (repo_id or "").strip()
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise HubError("invalid_name", f"Repository name '{repo_id}': write it as 'account/name', e.g. "
                                       "'alice/medcot-demo'.")
    namespace, name = parts
    for part, label in ((namespace, "account"), (name, "name")):
        if not REPO_NAME.match(part) or ".." in part or "--" in part or part.endswith((".", "-")):
            raise HubError("invalid_name", f"Repository name '{repo_id}': the {label} part '{part}' may only hold "
                                           "letters, digits, '-', '_' and '.', up to 96 characters, not starting "
                                           "or ending with '-' or '.', and no '--' or '..'.")
    return namespace, name


def safe_repo_name(text: str) -> str:
    """A run name turned into a valid repository name ('Quick demo #3' -> 'quick-demo-3')."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip().lower())
    cleaned = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", cleaned)).strip("-.")
    return cleaned[:96].strip("-.") or "medcot-model"


@dataclass
class Commit:
    repo_id: str
    url: str  # the repository's page
    commit_id: str
    commit_url: str
    created_repo: bool


@dataclass
class HubClient:
    """One user's session with the Hub. ``endpoint`` defaults to HF_ENDPOINT / huggingface.co."""

    token: str = field(repr=False)
    endpoint: str | None = None
    _api: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        from huggingface_hub import HfApi, constants

        self.endpoint = (self.endpoint or constants.ENDPOINT).rstrip("/")
        self._api = HfApi(endpoint=self.endpoint, token=self.token, library_name="medcot-studio")

    # ---- errors ---------------------------------------------------------------------------------------
    def _clean(self, text: str) -> str:
        return scrub(text, (self.token,))

    def _translate(self, exc: BaseException, doing: str, repo_id: str = "") -> HubError:
        """The HubError a user should see for ``exc`` raised while ``doing``."""
        import httpx
        from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

        if isinstance(exc, HubError):
            return exc
        if isinstance(exc, OfflineModeIsEnabled):
            return HubError("unreachable", "Cannot reach the Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE=1 "
                                           "in the app's environment). Unset it to publish.")
        if isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError)):
            return HubError("unreachable", f"Cannot reach the Hugging Face Hub at {self.endpoint} while {doing} "
                                           f"({self._clean(_first_line(exc))}). Check the network and try again.")
        status = getattr(getattr(exc, "response", None), "status_code", None) if isinstance(
            exc, HfHubHTTPError) else None
        detail = self._clean(_server_message(exc))
        if status == 401:
            return HubError("invalid_token", f"The Hugging Face token was rejected while {doing}: it is invalid, "
                                             f"expired or revoked. Create a token with write access at {TOKENS_PAGE}.")
        if status == 403:
            return HubError("no_write_access", f"The Hub refused {doing}{f' for {repo_id}' if repo_id else ''}: "
                                               f"this token may not write there ({detail}).")
        if status == 409:
            return HubError("name_taken", f"The name {repo_id} is already taken on the Hub ({detail}). Choose "
                                          "another name.")
        return HubError("hub_error", f"The Hub answered an error while {doing}"
                                     f"{f' (HTTP {status})' if status else ''}: {detail}")

    # ---- calls ----------------------------------------------------------------------------------------
    def check_reachable(self, timeout: float = REACH_TIMEOUT_S) -> None:
        """Raise HubError('unreachable') unless the Hub answers an HTTP request within ``timeout`` seconds."""
        import httpx
        from huggingface_hub import constants

        if constants.is_offline_mode():
            raise self._translate(_offline_error(), "checking the connection")
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False) as client:
                client.head(self.endpoint + "/api/whoami-v2")  # any HTTP answer means reachable
        except httpx.HTTPError as exc:
            raise self._translate(exc, "checking the connection") from None

    def whoami(self) -> Identity:
        try:
            return parse_whoami(self._api.whoami())
        except Exception as exc:  # noqa: BLE001 - every failure is translated and scrubbed
            raise self._translate(exc, "checking the token") from None

    def check_write_access(self, identity: Identity, repo_id: str) -> None:
        """Refuse before uploading when the token cannot write to ``repo_id``'s namespace, saying why."""
        namespace, name = split_repo_id(repo_id)
        verdict = identity.can_write(namespace)
        if verdict is not False:
            return
        if identity.role == "read":
            raise HubError("no_write_access", f"The token of {identity.name} is read-only: it cannot create or "
                                              f"update {repo_id}. Create a token with write access at "
                                              f"{TOKENS_PAGE}.")
        if namespace.lower() == identity.name.lower() or namespace in identity.writable_orgs + identity.other_orgs:
            raise HubError("no_write_access", f"The token of {identity.name} has no write access to "
                                              f"'{namespace}': give it 'repo.write' on '{namespace}' or use a "
                                              "token with write access.")
        raise HubError("name_taken", f"'{namespace}' is another account's namespace: {identity.name} cannot "
                                     f"publish there. Use '{identity.name}/{name}' or an organisation you can "
                                     "write to" + (f" ({', '.join(identity.writable_orgs)})."
                                                   if identity.writable_orgs else "."))

    def repo_exists(self, repo_id: str) -> bool:
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            self._api.repo_info(repo_id, repo_type="model")
            return True
        except RepositoryNotFoundError:
            return False  # also what the Hub says for someone else's private repo
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "looking up the repository", repo_id) from None

    def check_target(self, repo_id: str, update_existing: bool) -> bool:
        """Whether ``repo_id`` exists; raises 'name_taken' when it does and updating was not chosen."""
        exists = self.repo_exists(repo_id)
        if exists and not update_existing:
            raise HubError("name_taken", f"The repository {repo_id} already exists. Tick 'Update the repository "
                                         "if it exists' to add a new commit to it, or choose another name.")
        return exists

    def ensure_repo(self, repo_id: str, private: bool, update_existing: bool) -> tuple[str, bool]:
        """Create ``repo_id`` (or accept it when it exists and updating was chosen): (repo page URL, created)."""
        if self.check_target(repo_id, update_existing):
            return f"{self.endpoint}/{repo_id}", False
        try:
            url = self._api.create_repo(repo_id, repo_type="model", private=private, exist_ok=False)
        except Exception as exc:  # noqa: BLE001
            raise self._translate(exc, "creating the repository", repo_id) from None
        return str(url), True

    def upload_folder(self, folder: Path, repo_id: str, message: str, created_repo: bool) -> Commit:
        """Every file of ``folder``, in one commit (several for a large folder); returns the last commit.

        Any failure is an 'upload_incomplete' HubError, except a token or permission problem, named as such.
        """
        try:
            info = self._api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                           commit_message=message)
        except Exception as exc:  # noqa: BLE001
            cause = self._translate(exc, "uploading", repo_id)
            if cause.kind in {"invalid_token", "no_write_access"}:
                raise cause from None
            where = ("The repository was created; files already committed" if created_repo
                     else "Files already committed")
            reason = str(cause).rstrip(".")
            raise HubError("upload_incomplete", f"The upload to {repo_id} did not finish: {reason}. {where} stay "
                                                "(large uploads are committed in parts), the rest is missing. The "
                                                "publish is recorded as failed; press Retry: files already on the "
                                                "Hub are not sent again.") from None
        return Commit(repo_id=repo_id, url=f"{self.endpoint}/{repo_id}", commit_id=info.oid,
                      commit_url=str(info.commit_url), created_repo=created_repo)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _server_message(exc: BaseException) -> str:
    """The Hub's own words for an HTTP error (its JSON 'error' field), else the exception's first line."""
    response = getattr(exc, "response", None)
    try:
        data = response.json() if response is not None else None
        if isinstance(data, dict) and data.get("error"):
            return str(data["error"])
    except Exception:  # noqa: BLE001 - not JSON
        pass
    return _first_line(exc)


def _offline_error() -> Exception:
    from huggingface_hub.errors import OfflineModeIsEnabled

    return OfflineModeIsEnabled("offline mode")
