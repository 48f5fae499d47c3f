# One image for every arcrm process; the command picks the role
# (docker-compose.yml runs migrate, web, worker and beat from it).
# The Debian release is pinned so the apt package names below stay valid.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    ARCRM_VAR_DIR=/app/var \
    WEB_CONCURRENCY=3

# The shared libraries WeasyPrint lays out PDF letters with, and fonts to embed.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 \
        fonts-dejavu-core fonts-liberation \
 && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 arcrm
WORKDIR /app

# The lock alone first, so a code change does not reinstall every package.
# The runtime lock: the image carries no test or lint tools.
COPY requirements-runtime.lock ./
RUN pip install -r requirements-runtime.lock

COPY . .
# The settings refuse to load without a secret key when DEBUG is off; this
# one exists only while collectstatic runs at build time.
RUN SECRET_KEY=collectstatic-at-build-time-only python manage.py collectstatic --noinput \
 && mkdir -p /app/var \
 && chown arcrm:arcrm /app/var

USER arcrm
EXPOSE 8000
# Gunicorn reads its worker count from WEB_CONCURRENCY.
CMD ["gunicorn", "arcrm.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
