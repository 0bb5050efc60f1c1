# The finsentry image: worker, api and trainer run from it with different commands.
FROM python:3.11-slim
ENV PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 FINSENTRY_HOME=/var/lib/finsentry
WORKDIR /app
COPY pyproject.toml README.md ./
COPY foundation foundation
COPY finsentry finsentry
COPY streams streams
COPY inference inference
COPY training training
COPY schemas schemas
COPY alerts alerts
COPY labels labels
COPY api api
RUN pip install . && useradd --system --home /var/lib/finsentry finsentry && mkdir -p /var/lib/finsentry \
    && chown finsentry /var/lib/finsentry
USER finsentry
ENTRYPOINT ["finsentry"]
