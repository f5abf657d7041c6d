# syntax=docker/dockerfile:1
# The pod controller's image:  docker build -t trio-controller:0.1.0 .
#
# Stage 1 builds the wheel with maturin in the official maturin image (manylinux, with
# Rust and CPython); stage 2 pip-installs it, with the tested dependency pins from
# requirements-dev.txt as constraints, into a slim Python image that runs as an
# unprivileged numeric user. scripts/check-install.sh runs the same install steps in a
# fresh virtualenv without Docker (make test-install).
ARG PYTHON_VERSION=3.12

FROM ghcr.io/pyo3/maturin:v1.16.0 AS builder
ARG PYTHON_VERSION
WORKDIR /src
COPY Cargo.toml Cargo.lock pyproject.toml README.md ./
COPY rust/ rust/
COPY trio_controller/ trio_controller/
RUN --mount=type=cache,target=/root/.cargo/registry \
    maturin build --release --locked --strip --interpreter "python${PYTHON_VERSION}" --out /dist

FROM python:${PYTHON_VERSION}-slim-trixie
LABEL org.opencontainers.image.title="trio-controller" \
      org.opencontainers.image.description="client-go's workqueue example for Pods, on Trio with a Rust core" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements-dev.txt /tmp/constraints.txt
RUN --mount=type=bind,from=builder,source=/dist,target=/dist \
    pip install --no-cache-dir --constraint /tmp/constraints.txt /dist/*.whl \
    && rm /tmp/constraints.txt \
    && trio-controller --help >/dev/null
# metrics (--metrics-bind-address) and health probes (--health-probe-bind-address)
EXPOSE 8080 8081
# Not root, and numeric so that runAsNonRoot can verify it without /etc/passwd.
USER 65532:65532
ENTRYPOINT ["trio-controller"]
