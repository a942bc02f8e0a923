# coreclean dashboard, CPU-only. Build the analysis into /data/cache first (see README "Share a dashboard").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 \
    CORECLEAN_CACHE=/data/cache CORECLEAN_READONLY=1
WORKDIR /app

RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
COPY requirements.txt .
# CPU wheels of the pinned torch/torchvision keep the image small (no CUDA libraries).
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

COPY coreclean/ coreclean/
COPY pages/ pages/
COPY .streamlit/config.toml .streamlit/config.toml
COPY ui/ ui/
COPY dashboard.py ./

RUN useradd --create-home --uid 1000 coreclean && mkdir -p /data/cache && chown -R coreclean /data
USER coreclean
VOLUME ["/data"]
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl --fail --silent http://localhost:8501/_stcore/health || exit 1
CMD ["streamlit", "run", "dashboard.py", "--server.port=8501", "--server.address=0.0.0.0"]
