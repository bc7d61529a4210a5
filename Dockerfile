# gatecast server image: serving dependencies only (no torch, no compilers in the final stage).
# Build:  docker build -t gatecast .   (podman: podman build --format docker -t gatecast . keeps the HEALTHCHECK)
# Run:    podman run -p 127.0.0.1:8000:8000 gatecast
# Own models: mount a repository over the baked one: -v ./my-models:/srv/gatecast/models:ro
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md requirements/serve.txt ./
COPY app ./app
COPY contract ./contract
# Dependencies from the lock file (every version pinned, every file's hash checked), then gatecast itself.
# After the install: caches, tests, pip itself, and what serving never loads: onnxruntime's model-building tools
# (transformers, quantization, tools) and zstandard's CFFI backend (its C backend is the one imported).
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install -q pip==26.3 \
 && /opt/venv/bin/pip install --require-hashes -r serve.txt \
 && /opt/venv/bin/pip install --no-deps . \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} + \
 && find /opt/venv/lib/python3.11/site-packages -mindepth 2 -maxdepth 3 -type d -name tests -prune -exec rm -rf {} + \
 && rm -rf /opt/venv/lib/python3.11/site-packages/pip /opt/venv/lib/python3.11/site-packages/setuptools \
 && cd /opt/venv/lib/python3.11/site-packages \
 && rm -rf onnxruntime/transformers onnxruntime/quantization onnxruntime/tools zstandard/_cffi*.so

FROM ${PYTHON_IMAGE}
RUN groupadd --gid 10001 gatecast && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin gatecast
COPY --from=build /opt/venv /opt/venv
COPY models /srv/gatecast/models
# The embedded stream store (an SQLite file): a volume, as the rest of the filesystem may be read-only.
RUN mkdir -p /var/lib/gatecast && chown 10001:10001 /var/lib/gatecast
VOLUME /var/lib/gatecast
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATECAST_HOST=0.0.0.0 \
    GATECAST_PORT=8000 \
    GATECAST_GRPC_PORT=8001 \
    GATECAST_MODEL_REPOSITORY=/srv/gatecast/models \
    GATECAST_STATE_DIR=/var/lib/gatecast
WORKDIR /srv/gatecast
USER 10001:10001
EXPOSE 8000 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/v2/health/ready', timeout=2).status != 200)"]
# uvicorn drains in-flight requests on SIGTERM (up to 30 s), then runs the shutdown of every worker.
STOPSIGNAL SIGTERM
ENTRYPOINT ["gatecast", "serve"]
