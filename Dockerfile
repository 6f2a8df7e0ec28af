# syntax=docker/dockerfile:1
#
# docker build -t maas-gateway:0.1.0 \
#   --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# Base images are pinned by full version tag and by the digest of the tag's multi-architecture
# index, so a rebuilt tag cannot change the image unnoticed. To refresh a digest (a new patch
# release, Debian security updates), on a machine that reaches Docker Hub:
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm --format '{{json .Manifest.Digest}}'
#   (or: skopeo inspect --raw docker://python:3.11.14-slim-bookworm | sha256sum)
# and replace the sha256 after the tag below; the same for NODE_IMAGE. These two were not
# resolved from this project's CI, which cannot reach Docker Hub: they are the index digests
# other public projects pin for these tags. `make image-check` builds on stand-ins built from
# Debian's packages instead, passed as these build args.
# The build and runtime stages must use the same PYTHON_IMAGE: the venv's interpreter path is
# baked into it.
#
# tests/deploy/test_image_install.py runs the `build` stage's steps outside Docker (with the
# /opt paths moved under a temporary directory) and serves from the result, so keep its RUN
# lines plain POSIX sh and its paths in the VENV, BUILD_TOOLS and DIST variables.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d
# A node image with python3 (Debian's, from buildpack-deps), which vendor_assets.py needs.
ARG NODE_IMAGE=node:22.15.1-bookworm@sha256:e558507eb799e3a76fcdaaee5e48dce1a00aebc85892128a9fca59f63bd49511

# The browser pages' assets (GraphiQL, Swagger UI at /docs) from the npm registry, checked
# against integrity hashes pinned in the script, so the pages work without internet access in
# the cluster. They land in /out/<page>/vendor/.
FROM ${NODE_IMAGE} AS assets
WORKDIR /src
COPY scripts/vendor_assets.py scripts/
RUN python3 scripts/vendor_assets.py --static /out

# The wheel, and a venv holding only it and the locked runtime dependencies.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VENV=/opt/venv \
    BUILD_TOOLS=/opt/build-tools \
    DIST=/opt/dist
WORKDIR /src
# Dependencies first, so a code change reuses this layer. Every pin carries its hashes, and
# wheels only: the slim image has no compiler. The runtime venv gets no pip of its own; the
# build-tools venv (setuptools and wheel at the dev lock's pins) installs into it.
COPY requirements/runtime.lock requirements/dev.lock requirements/
RUN --mount=type=cache,target=/root/.cache/pip \
    python -m venv "$BUILD_TOOLS" \
    && grep -E '^(setuptools|wheel)==' requirements/dev.lock > "$BUILD_TOOLS/requirements.txt" \
    && "$BUILD_TOOLS/bin/pip" install --no-deps -r "$BUILD_TOOLS/requirements.txt" \
    && python -m venv --without-pip "$VENV" \
    && "$BUILD_TOOLS/bin/pip" --python "$VENV/bin/python" install \
        --no-deps --require-hashes --only-binary=:all: -r requirements/runtime.lock
COPY pyproject.toml README.md ./
COPY app/ app/
COPY --from=assets /out/ app/static/
RUN --mount=type=cache,target=/root/.cache/pip \
    "$BUILD_TOOLS/bin/pip" wheel --no-deps --no-build-isolation --wheel-dir "$DIST" . \
    && "$BUILD_TOOLS/bin/pip" --python "$VENV/bin/python" install --no-deps "$DIST"/maas_gateway-*.whl

FROM ${PYTHON_IMAGE} AS runtime
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="maas-gateway" \
      org.opencontainers.image.description="GraphQL + REST gateway in front of Canonical MAAS's boot-image API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/${PYTHON_IMAGE}"
# A passwd entry for the numeric user, for libraries that look the user up; no home, no shell.
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin gateway
# Owned by root and not writable by the gateway's user: with a read-only root filesystem the
# process writes only to /tmp (an emptyDir in Kubernetes). Bytecode was compiled at install time.
COPY --from=build /opt/venv /opt/venv
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# An empty working directory: the settings also read a .env file from here, and there is none.
WORKDIR /app
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000
# For docker run and compose; Kubernetes ignores it and uses the chart's probes.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/livez', timeout=2)"]
# One uvicorn worker: the caches are per process, so scale with replicas, not workers.
CMD ["maas-gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
