# syntax=docker/dockerfile:1
# One image recipe for every WhisPTT service; build arguments pick the service:
#
#   docker build -t whisptt/transcription-service \
#     --build-arg SERVICE=whisp-transcription-service \
#     --build-arg SECTION=TRANSCRIPTION --build-arg PORT=8010 .
#
# (docker-compose.yml holds every service's arguments; deploy/README.md lists them.)
# The build context is the repository root: the workspace's member folders and uv.lock.
# The builder installs the one workspace package SERVICE and its locked dependencies into
# /app/.venv (non-editable, so no source tree is needed at run time); the runtime stage is
# a slim Python with only that venv, run as a non-root user.

ARG PYTHON_IMAGE=python:3.11-slim
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# --- workspace -----------------------------------------------------------------------
# The context as .dockerignore leaves it (the workspace's member folders, uv.lock), plus
# its manifests alone in /manifests, so the dependency layer below is rebuilt when uv.lock
# or a pyproject.toml changes, not when code does (COPY --from is cached by content).
# Every member is taken as it is, so a new workspace package needs no edit here.
FROM ${PYTHON_IMAGE} AS workspace
WORKDIR /src
COPY . .
RUN mkdir /manifests && cp --parents pyproject.toml uv.lock */pyproject.toml /manifests/

# --- builder -------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
# SERVICE: the workspace package to install and run (its console script of the same name
# is the image's command). EXTRAS: space-separated extras of it. BUILD_APT: Debian
# packages needed to compile a source-only dependency (the agents' `local` extra).
ARG SERVICE
ARG EXTRAS=""
ARG BUILD_APT=""
RUN test -n "$SERVICE" || { echo "build with --build-arg SERVICE=<workspace package>" >&2; exit 1; }
COPY --from=uv /uv /uvx /usr/local/bin/
RUN if [ -n "$BUILD_APT" ]; then \
        apt-get update -qq && apt-get install -y -qq --no-install-recommends $BUILD_APT \
        && rm -rf /var/lib/apt/lists/*; \
    fi
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /src

# Third-party dependencies first: this layer changes only with uv.lock or a manifest.
COPY --from=workspace /manifests/ ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace --package "$SERVICE" \
        $(for extra in $EXTRAS; do echo --extra "$extra"; done)

# Then the workspace packages SERVICE is made of (its folder, shared/, recorder/ for the
# audio service), built as wheels. `whisp-service` names the command whatever SERVICE is.
COPY --from=workspace /src/ ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --package "$SERVICE" \
        $(for extra in $EXTRAS; do echo --extra "$extra"; done) \
    && test -x "/app/.venv/bin/$SERVICE" \
    && ln -s "$SERVICE" /app/.venv/bin/whisp-service

# --- runtime -------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# SECTION: the service's config.yaml section as its environment prefix spells it
# (WHISP_<SECTION>__PORT); PORT: where it listens. RUNTIME_APT: Debian libraries it loads
# (audio: PortAudio and libsndfile). USER_GROUPS: extra groups of the service user (audio:
# `audio`, for /dev/snd; compose adds the host's audio gid with group_add).
ARG SERVICE
ARG SECTION
ARG PORT
ARG RUNTIME_APT=""
ARG USER_GROUPS=""
RUN test -n "$SECTION" && test -n "$PORT" \
    || { echo "build with --build-arg SECTION=<SECTION> --build-arg PORT=<port>" >&2; exit 1; }
LABEL org.opencontainers.image.title="${SERVICE}"

RUN if [ -n "$RUNTIME_APT" ]; then \
        apt-get update && apt-get install -y --no-install-recommends $RUNTIME_APT \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it. /app/data is the
# writable working-data folder (relative `data/...` paths resolve there from WORKDIR /app);
# /app/data/audio exists in every image so that a new audio-data volume mounted there
# (written by audio, read by the workers) takes uid 10001's ownership, not root's.
RUN groupadd --system --gid 10001 whisp \
    && useradd --system --uid 10001 --gid whisp ${USER_GROUPS:+--groups "$USER_GROUPS"} \
        --create-home --home-dir /home/whisp --shell /usr/sbin/nologin whisp \
    && mkdir -p /app/data/audio \
    && chown -R 10001:10001 /app/data

COPY --from=builder /app/.venv /app/.venv

# WHISP_PORT_ENV names the variable holding the port, so the healthcheck follows a port
# changed at run time. Secrets (session secret, service token, API keys) come from the
# run-time environment only; production mode refuses placeholders.
ENV PATH="/app/.venv/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    WHISP_MODE=production \
    WHISP_${SECTION}__HOST=0.0.0.0 \
    WHISP_${SECTION}__PORT=${PORT} \
    WHISP_PORT_ENV=WHISP_${SECTION}__PORT

WORKDIR /app
USER 10001
EXPOSE ${PORT}

# 200 from /readyz means the service's dependencies answer (Redis; the model, for a
# worker); urlopen raises (exit 1) on 503 or no answer. Slim images have no curl.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ[os.environ['WHISP_PORT_ENV']]; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % port, timeout=4)"]

CMD ["whisp-service"]
