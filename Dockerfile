# callstream in a container: the same install script as on a host, models assembled at build time.
FROM python:3.11-slim

WORKDIR /opt/callstream
COPY pyproject.toml README.md ./
COPY src ./src
COPY config ./config
COPY scripts ./scripts
ENV CALLSTREAM_CACHE_DIR=/opt/callstream/models
RUN scripts/install.sh && rm -rf /root/.cache/pip

# Listen on all interfaces inside the container; publish only what Asterisk and the browsers need.
ENV CALLSTREAM_AUDIOSOCKET_HOST=0.0.0.0 \
    CALLSTREAM_HTTP_HOST=0.0.0.0 \
    CALLSTREAM_STORE_PATH=/var/lib/callstream/callstream.db \
    CALLSTREAM_LOG_FORMAT=json
VOLUME /var/lib/callstream
EXPOSE 9092 8080
STOPSIGNAL SIGTERM
CMD ["/opt/callstream/.venv/bin/callstream", "serve", "--config", "/opt/callstream/config/callstream.toml"]
