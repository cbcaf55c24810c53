# MedCoT Studio for a GPU Hugging Face Space (Docker SDK), or any NVIDIA machine:
#   docker build -t medcot-studio .
#   docker run --gpus all -p 7860:7860 -v medcot-data:/data \
#     -e MEDCOT_AUTH_MODE=password -e MEDCOT_USERS='alice:a-long-password' medcot-studio
# See docs/DEPLOY.md. The data directory (MEDCOT_HOME) holds the database, runs, uploads and every model/download
# cache. With Docker it defaults to /data/medcot, on the volume (a real disk). On a Space, /data is a Storage Bucket
# mount (no file locking), so there the data directory stays on local disk (~/medcot) and the app writes
# database snapshots and finished files to /data (scripts/docker-entrypoint.sh picks).
FROM nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Python 3.11 (the version CI tests) from deadsnakes; a C compiler for Triton's kernels; make for the install
# recipe; tini as PID 1 so SIGTERM reaches the app (it stops the worker, which marks its run resumable).
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev build-essential make \
      git curl ca-certificates tini \
 && apt-get purge -y software-properties-common \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*

# Spaces run the container as UID 1000; /data is where a Docker volume or a Space's Storage Bucket is mounted.
RUN useradd --create-home --uid 1000 --shell /bin/bash user \
 && mkdir -p /data \
 && chown user:user /data
USER 1000
ENV HOME=/home/user \
    PATH=/home/user/app/.venv/bin:$PATH \
    MEDCOT_PORT=7860 \
    MEDCOT_CONTAINER=1 \
    GRADIO_ANALYTICS_ENABLED=False
WORKDIR /home/user/app

# The dependencies first, so a code change does not reinstall torch (this is the pip line of `make install`).
COPY --chown=user:user requirements.txt requirements-gpu.txt ./
RUN python3.11 -m venv .venv \
 && .venv/bin/python -m pip install -q -r requirements-gpu.txt

# Then the app, installed by the recipe CI runs (`make install`), with the GPU requirements, and llama.cpp's GGUF
# tools built into the image (a Space should not spend its first GGUF export compiling them).
COPY --chown=user:user . .
RUN make install install-gguf PYTHON=python3.11 REQUIREMENTS=requirements-gpu.txt

EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
  CMD ["sh", "-c", "curl -fsS -o /dev/null http://127.0.0.1:${MEDCOT_PORT}/ || exit 1"]
ENTRYPOINT ["/usr/bin/tini", "--", "scripts/docker-entrypoint.sh"]
