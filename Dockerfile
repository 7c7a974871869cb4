# syntax=docker/dockerfile:1
# kernel-controller image: `docker build -t kernel-controller:latest .`
# The builder installs the project (no dev extras) into a venv; the final image is the slim
# Python base plus that venv, run as a non-root user, needing no writable path at run time.
# tests/integration/images/ builds it with podman and runs it as the Deployment does.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src/ src/
RUN python -m venv /opt/venv
RUN --mount=type=cache,target=/root/.cache/pip /opt/venv/bin/pip install /src
# What the controller never runs: the installers, and the packages' own tests.
RUN /opt/venv/bin/pip uninstall --yes --quiet pip setuptools \
    && find /opt/venv -depth -type d \( -name tests -o -name test \) -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
COPY --from=builder /opt/venv /opt/venv
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/opt/venv/bin/kernel-controller"]
