# syntax=docker/dockerfile:1
# kernel-controller image: `docker build -t kernel-controller:latest .`
# The builder installs the project (no dev extras) into a venv; the final image is the slim
# Python base plus that venv, run as a non-root user, needing no writable path at run time.
# tests/integration/deploy/test_image.py replays the builder's steps in a fresh venv.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src/ src/
RUN python -m venv /opt/venv
RUN --mount=type=cache,target=/root/.cache/pip /opt/venv/bin/pip install /src

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/opt/venv/bin/kernel-controller"]
