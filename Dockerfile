# The vitalstream worker image. `docker compose up` builds it; see docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY streamer ./streamer
COPY models ./models
COPY schemas ./schemas
RUN pip install .
RUN useradd --create-home --uid 10001 vitals && mkdir -p /app/var && chown vitals /app/var
USER vitals
ENTRYPOINT ["vitalstream"]
CMD ["worker"]
