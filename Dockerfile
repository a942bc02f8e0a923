# coreclean dashboard, CPU-only. Build the analysis into /data/cache first (see README "Share a dashboard").
# Stage 1 builds the wheel; stage 2 installs it as any user would (no checkout in the image) and runs its command.
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md dashboard.py ./
COPY .streamlit/config.toml .streamlit/config.toml
COPY coreclean/ coreclean/
COPY ui/ ui/
COPY pages/ pages/
RUN pip wheel --no-cache-dir --no-deps -w /dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
    CORECLEAN_CACHE=/data/cache CORECLEAN_READONLY=1
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
COPY --from=wheel /dist/ /tmp/dist/
# CPU wheels of the pinned torch/torchvision keep the image small (no CUDA libraries).
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu /tmp/dist/coreclean-*.whl && rm -rf /tmp/dist

RUN useradd --create-home --uid 1000 coreclean && mkdir -p /data/cache && chown -R coreclean /data
USER coreclean
WORKDIR /home/coreclean
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl --fail --silent http://localhost:8501/_stcore/health || exit 1
# Listening beyond localhost is allowed in read-only mode only (CORECLEAN_READONLY=1 above; --read-only says it too).
CMD ["coreclean", "dashboard", "--read-only", "--address", "0.0.0.0", "--port", "8501"]
