# crashext in a container: Red Hat's crash (Debian's build), drgn, crashext,
# and -- when pykdump/mpykdump.so is in the build context -- PyKdump with the
# crashext commands loaded in every crash session (~/.crashrc).
#
#   docker build -t crashext .        # or scripts/build-image (buildah, no Docker engine)
#   docker run --rm -v "$PWD":/dumps crashext crashext triage -c vmcore -s vmlinux
#   docker run --rm -it -v "$PWD":/dumps crashext crash vmlinux vmcore
#
# The working directory is /dumps, so paths relative to the mounted directory
# work.  See docs/install.md.

# ---- build stage: a venv with drgn and crashext (pip and sources stay here)
FROM docker.io/library/debian:bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
# the drgn release crashext's tests ran with
ARG DRGN_VERSION=0.3.0
# behind a TLS-intercepting proxy: a CA bundle path for pip, mounted for the
# build only (scripts/build-image does this with the host's bundle)
ARG PIP_CERT
RUN python3 -m venv /opt/crashext \
 && /opt/crashext/bin/pip install --no-cache-dir --disable-pip-version-check "drgn==${DRGN_VERSION}"
COPY setup.py pyproject.toml README.md /src/
COPY crashext /src/crashext
COPY epython /src/epython
RUN /opt/crashext/bin/pip install --no-cache-dir --disable-pip-version-check /src \
 && find /opt/crashext -name __pycache__ -prune -exec rm -rf {} +

# ---- the image
FROM docker.io/library/debian:bookworm-slim
# pykdump/ holds a README and, optionally, mpykdump.so (PyKdump built for
# Debian's crash 8.0.2 against Debian's libpython3.11; see pykdump/README.md)
COPY pykdump/ /opt/pykdump/
RUN set -e; \
    pkgs="crash python3 less"; \
    if [ -f /opt/pykdump/mpykdump.so ]; then pkgs="$pkgs libpython3.11"; fi; \
    apt-get update; \
    apt-get install -y --no-install-recommends $pkgs; \
    rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log
COPY --from=build /opt/crashext /opt/crashext
COPY scripts/container-entrypoint /usr/local/bin/crashext-entrypoint

# PyKdump replaces its Python's sys.path with its own plus PYKDUMPPATH: the
# linked Python's stdlib, the epython/ scripts, the venv's site-packages
# (crashext, tabulate).  tests/test_image.py checks this equals what
# `crashext crash-init --export` computes inside the image.
ENV PATH=/opt/crashext/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CRASHEXT_PYKDUMP=/opt/pykdump/mpykdump.so \
    PYKDUMPPATH=/usr/lib/python3.11:/usr/lib/python3.11/lib-dynload:/opt/crashext/share/crashext/epython:/opt/crashext/lib/python3.11/site-packages \
    PYTHONDONTWRITEBYTECODE=1

RUN useradd --create-home --uid 1000 --shell /bin/bash crashext \
 && mkdir -p /dumps
USER crashext
# crash reads ~/.crashrc at start: load PyKdump and register the crashext commands
RUN if [ -f /opt/pykdump/mpykdump.so ]; then \
        crashext crash-init --crashrc > /home/crashext/.crashrc; \
    fi
WORKDIR /dumps
ENTRYPOINT ["/usr/local/bin/crashext-entrypoint"]
CMD ["crashext", "--help"]
