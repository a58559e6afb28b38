# One image for the API, the workers and the migrations; `ovencast` is the entry point:
#   docker run IMAGE                       the API (ovencast serve, port 8000)
#   docker run IMAGE worker --name w1      a worker (/metrics and /health on 9100)
#   docker run IMAGE db upgrade            the migrations (a one-shot)
# docs/DEPLOY.md says how it is built and run, and what of it was tried.

ARG PYTHON_VERSION=3.11

# -- build: the package and its dependencies (with the s3 extra) into a virtualenv ----
FROM python:${PYTHON_VERSION}-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/ovencast
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN /opt/ovencast/bin/pip install --upgrade pip \
 && /opt/ovencast/bin/pip install ".[s3]"

# -- runtime: the virtualenv, a non-root user, nothing to build with --------------------
FROM python:${PYTHON_VERSION}-slim AS runtime
# LightGBM's OpenMP runtime.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 ovencast \
 && useradd --system --uid 10001 --gid ovencast --home-dir /var/lib/ovencast \
      --create-home --shell /usr/sbin/nologin ovencast
COPY --from=build /opt/ovencast /opt/ovencast
ENV PATH=/opt/ovencast/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    OVENCAST_HOME=/var/lib/ovencast \
    LOG_JSON=true
USER 10001:10001
WORKDIR /var/lib/ovencast
# 8000: the API (ovencast serve); 9100: a worker's /metrics and /health
# (WORKER_METRICS_PORT, set where a worker runs).
EXPOSE 8000 9100
ENTRYPOINT ["ovencast"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
