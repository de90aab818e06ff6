# syntax=docker/dockerfile:1
# mockinfura, a local Infura for tests, as an image.
#   docker build -t mockinfura .
#   docker run --rm -p 8545:8545 mockinfura                                   # the embedded default config
#   docker run --rm -p 8545:8545 -v "$PWD/mockinfura.toml:/config/mockinfura.toml:ro" \
#       -e MOCKINFURA_CONFIG=/config/mockinfura.toml mockinfura                # your own config
# HTTPS under Infura's own names (serve --tls) and docker compose: see compose.yaml and examples/docker/README.md.

# --- build: the pinned dependencies (requirements.lock, the same as `make`), then mockinfura itself ---------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/mockinfura
ENV PATH=/opt/mockinfura/bin:$PATH
WORKDIR /src
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY pyproject.toml README.md ./
COPY mockinfura ./mockinfura
RUN pip install --no-cache-dir --no-deps --no-build-isolation .

# --- runtime: the virtualenv alone, run by an unprivileged user ----------------------------------------------------
FROM python:3.11-slim
RUN groupadd --system --gid 10001 mockinfura \
 && useradd --system --uid 10001 --gid mockinfura --home-dir /home/mockinfura --create-home mockinfura \
 && mkdir -p /config /ca \
 && chown mockinfura:mockinfura /ca
COPY --from=build /opt/mockinfura /opt/mockinfura
# MOCKINFURA_CONFIG: a config mounted into /config (unset: the embedded default). MOCKINFURA_TLS=1 (or `serve --tls`)
# serves HTTPS/WSS with a certificate from the test CA in MOCKINFURA_CA_DIR, created there once: mount a volume on
# /ca to keep it across containers and to let other containers trust its ca.pem.
ENV PATH=/opt/mockinfura/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MOCKINFURA_HOST=0.0.0.0 \
    MOCKINFURA_PORT=8545 \
    MOCKINFURA_TLS=0 \
    MOCKINFURA_CA_DIR=/ca
USER 10001:10001
WORKDIR /home/mockinfura
EXPOSE 8545
# Ready once /_mock/health answers (the control plane answers loopback clients, as this check is); over HTTPS when
# MOCKINFURA_TLS is on, verifying the certificate against the test CA.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, ssl, urllib.request as u; e = os.environ; tls = e.get('MOCKINFURA_TLS', '0').lower() in ('1', 'true', 'yes', 'on'); u.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + e.get('MOCKINFURA_PORT', '8545') + '/_mock/health', timeout=4, context=ssl.create_default_context(cafile=os.path.join(e.get('MOCKINFURA_CA_DIR', '/ca'), 'ca.pem')) if tls else None)"]
ENTRYPOINT ["mockinfura"]
CMD ["serve"]
