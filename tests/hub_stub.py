"""A stand-in for the few Hugging Face Hub endpoints a publish uses, served on 127.0.0.1 for tests.

This machine cannot reach the Hub, so the real ``huggingface_hub`` client is pointed at this server to exercise
what happens after the network call: whoami (valid, invalid, read-only tokens), repo lookup and creation,
preupload, README validation and the commit. Files arrive as regular git blobs and are kept in memory so a test
can check exactly what was received. It answers the way the Hub documents it answers; it is not the Hub.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class StubRepo:
    owner: str
    private: bool
    files: dict[str, bytes] = field(default_factory=dict)
    commits: list[str] = field(default_factory=list)


@dataclass
class HubStub:
    tokens: dict[str, dict[str, Any]] = field(default_factory=dict)  # token -> whoami JSON
    repos: dict[str, StubRepo] = field(default_factory=dict)
    fail_commit: int | None = None  # HTTP status to answer commits with (None: accept)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def whoami_for(self, token: str) -> dict[str, Any] | None:
        return self.tokens.get(token)


def user(name: str, role: str = "write", orgs: list[tuple[str, str]] | None = None,
         scoped: list[tuple[str, list[str]]] | None = None) -> dict[str, Any]:
    """A whoami-v2 answer: a user, their organisations (name, role) and their token's role / fine-grained scopes."""
    token: dict[str, Any] = {"displayName": "test", "role": role}
    if role == "fineGrained":
        token["fineGrained"] = {"global": [], "scoped": [
            {"entity": {"type": "user", "name": n}, "permissions": perms} for n, perms in scoped or []]}
    return {"type": "user", "name": name, "orgs": [{"name": o, "roleInOrg": r} for o, r in orgs or []],
            "auth": {"type": "access_token", "accessToken": token}}


_REPO_API = re.compile(r"/api/models/([^/]+/[^/]+)(?:/revision/[^/]+)?")
_UPLOAD_API = re.compile(r"/api/models/([^/]+/[^/]+)/(preupload|commit)/([^/]+)")
_BAD_TOKEN = {"error": "Invalid credentials in Authorization header"}


class _StubServer(ThreadingHTTPServer):
    def __init__(self, stub: HubStub):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stub = stub


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _StubServer

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        return None

    @property
    def stub(self) -> HubStub:
        return self.server.stub

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body if body is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _caller(self) -> dict[str, Any] | None:
        auth = self.headers.get("Authorization", "")
        return self.stub.whoami_for(auth.removeprefix("Bearer ").strip()) if auth.startswith("Bearer ") else None

    def do_HEAD(self) -> None:
        self.stub.requests.append(("HEAD", self.path))
        self._send(401 if self.path.startswith("/api/whoami") else 200)

    def do_GET(self) -> None:
        self.stub.requests.append(("GET", self.path))
        path = self.path.split("?")[0]
        if path == "/api/whoami-v2":
            me = self._caller()
            return self._send(200, me) if me else self._send(401, _BAD_TOKEN)
        if m := _REPO_API.fullmatch(path):
            return self._repo_info(m.group(1))
        self._send(404, {"error": f"not in the stub: GET {path}"})

    def do_POST(self) -> None:
        self.stub.requests.append(("POST", self.path))
        path = self.path.split("?")[0]
        body = self._body()
        me = self._caller()
        if path == "/api/validate-yaml":
            return self._send(200, {"errors": [], "warnings": []})
        if me is None:
            return self._send(401, _BAD_TOKEN)
        if path == "/api/repos/create":
            return self._create_repo(me, json.loads(body))
        m = _UPLOAD_API.fullmatch(path)
        if m and m.group(1) in self.stub.repos:
            if m.group(2) == "preupload":
                return self._preupload(json.loads(body)["files"])
            return self._commit(m.group(1), body)
        self._send(404, {"error": f"not in the stub: POST {path}"}, {"X-Error-Code": "RepoNotFound"})

    def _repo_info(self, repo_id: str) -> None:
        repo = self.stub.repos.get(repo_id)
        if repo is None:
            return self._send(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        sha = repo.commits[-1] if repo.commits else "0" * 40
        self._send(200, {"id": repo_id, "sha": sha, "private": repo.private,
                         "siblings": [{"rfilename": f} for f in repo.files]})

    def _create_repo(self, me: dict[str, Any], payload: dict[str, Any]) -> None:
        repo_id = f"{payload.get('organization') or me['name']}/{payload['name']}"
        if repo_id in self.stub.repos:
            return self._send(409, {"error": "You already created this model repo", "url": ""})
        writable = {me["name"]} | {o["name"] for o in me.get("orgs", []) if o["roleInOrg"] != "read"}
        if me["auth"]["accessToken"]["role"] == "read" or repo_id.split("/")[0] not in writable:
            return self._send(403, {"error": "You don't have the rights to create a model under the "
                                             f"namespace \"{repo_id.split('/')[0]}\""})
        self.stub.repos[repo_id] = StubRepo(owner=me["name"], private=payload.get("visibility") == "private")
        self._send(200, {"url": f"{self.stub.url}/{repo_id}", "name": repo_id})

    def _preupload(self, files: list[dict[str, Any]]) -> None:
        self._send(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                                   for f in files]})

    def _commit(self, repo_id: str, body: bytes) -> None:
        """A commit as NDJSON lines; files arrive base64-encoded (regular upload mode) and are kept."""
        if self.stub.fail_commit is not None:
            return self._send(self.stub.fail_commit, {"error": "Storage quota exceeded for this namespace"})
        repo = self.stub.repos[repo_id]
        for line in body.decode().splitlines():
            item = json.loads(line)
            if item["key"] == "file":
                repo.files[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        sha = hashlib.sha1(body).hexdigest()
        repo.commits.append(sha)
        self._send(200, {"commitOid": sha, "commitUrl": f"{self.stub.url}/{repo_id}/commit/{sha}", "success": True})


class RunningStub:
    def __init__(self, stub: HubStub):
        self.stub = stub
        self.server = _StubServer(stub)
        stub.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HubStub:
        self.thread.start()
        return self.stub

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
