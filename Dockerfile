# Spendgate: the OpenAI-compatible proxy, as one container.
# Build: docker build -t spendgate .    Run: see docker-compose.yml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Token counting must work offline: the tiktoken rank files are fetched while
# building and pinned by hash, never downloaded by the running proxy.
ARG TIKTOKEN_URL=https://openaipublic.blob.core.windows.net/encodings
RUN mkdir -p /opt/spendgate/tiktoken \
 && cd /opt/spendgate/tiktoken \
 && python -c "import sys, urllib.request; [urllib.request.urlretrieve(f'{sys.argv[1]}/{n}.tiktoken', f'{n}.tiktoken') for n in sys.argv[2:]]" \
      "$TIKTOKEN_URL" o200k_base cl100k_base \
 && printf '%s  %s\n' \
      446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d o200k_base.tiktoken \
      223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7 cl100k_base.tiktoken \
      > SHA256SUMS \
 && sha256sum -c SHA256SUMS
ENV SPENDGATE_TIKTOKEN_DIR=/opt/spendgate/tiktoken

WORKDIR /opt/spendgate/src
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY routing ./routing
COPY cache ./cache
COPY pricing ./pricing
RUN pip install ".[postgres]"

# The default config suits docker-compose; mount another over it elsewhere.
COPY deploy/spendgate.yaml /etc/spendgate/spendgate.yaml

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin spendgate
USER spendgate
WORKDIR /opt/spendgate

EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
CMD ["spendgate", "serve", "--host", "0.0.0.0", "--port", "8080", "--config", "/etc/spendgate/spendgate.yaml"]
