# crashext in a container: Red Hat's crash 9.x and PyKdump, both built here
# from pinned sources (scripts/build-pykdump), drgn, crashext, and the crashext
# commands loaded in every crash session (~/.crashrc).
#
# The build stage needs the pinned source archives in pykdump/sources/ of the
# build context (scripts/build-image copies them there from
# ../shared/third_party or $CRASHEXT_SOURCES); without them it fetches them
# from upstream (needs internet).
#
#   docker build -t crashext .        # or scripts/build-image (buildah, no Docker engine)
#   docker run --rm -v "$PWD":/dumps crashext crashext triage -c vmcore -s vmlinux
#   docker run --rm -it -v "$PWD":/dumps crashext crash vmlinux vmcore
#
# The working directory is /dumps, so paths relative to the mounted directory
# work.  See docs/install.md.

# ---- build stage: crash 9.x and PyKdump for it, from pinned sources.  The
# cache mount keeps build-pykdump's own cache between builds: when the sources
# and the recipe are unchanged it takes seconds instead of ~20 minutes.
# scripts/build-image also puts the host's own build (scripts/setup made it
# from the same pinned sources) in pykdump/prebuilt/: build-pykdump installs
# it only when its key (sources, recipe, Python) is the one it would build.
FROM docker.io/library/debian:bookworm-slim AS pykdump
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git python3 \
      gcc g++ make bison flex texinfo libncurses-dev zlib1g-dev liblzo2-dev \
      libsnappy-dev libzstd-dev python3.11 python3.11-dev zip patch xz-utils \
      libgmp-dev libmpfr-dev \
 && rm -rf /var/lib/apt/lists/*
COPY scripts/build-pykdump scripts/crash_sources.py scripts/pykdump_patches.py /src/scripts/
COPY pykdump/ /src/pykdump/
RUN --mount=type=cache,target=/cache,id=crashext-pykdump \
    mkdir -p /src/pykdump/sources \
 && XDG_CACHE_HOME=/cache CRASHEXT_SOURCES=/src/pykdump/sources \
      python3 /src/scripts/build-pykdump --crash 9.0.2+abcb45e --prebuilt /src/pykdump/prebuilt \
 && mkdir -p /opt/pykdump \
 && cp -a /cache/crashext/pykdump/crash-9.0.2+abcb45e /opt/pykdump/

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
RUN /opt/crashext/bin/pip install --no-cache-dir --disable-pip-version-check "/src[exporter]" \
 && find /opt/crashext -name __pycache__ -prune -exec rm -rf {} +

# ---- the image
FROM docker.io/library/debian:bookworm-slim
# crash's and PyKdump's run-time libraries (the compression libraries of
# `make lzo snappy zstd`, ncurses, gdb 16's GMP and MPFR, and Debian's
# libpython3.11 PyKdump links)
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 less libpython3.11 \
      liblzo2-2 libsnappy1v5 libzstd1 libncursesw6 zlib1g libgmp10 libmpfr6 \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log
COPY --from=pykdump /opt/pykdump /opt/pykdump
RUN ln -s /opt/pykdump/crash-9.0.2+abcb45e/crash /usr/local/bin/crash
COPY --from=build /opt/crashext /opt/crashext
COPY scripts/container-entrypoint /usr/local/bin/crashext-entrypoint

# PyKdump replaces its Python's sys.path with its own plus PYKDUMPPATH: the
# linked Python's stdlib, the epython/ scripts, the venv's site-packages
# (crashext, tabulate).  tests/test_image.py checks this equals what
# `crashext crash-init --export` computes inside the image.
ENV PATH=/opt/crashext/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CRASHEXT_BUILDS=/opt/pykdump \
    PYKDUMPPATH=/usr/lib/python3.11:/usr/lib/python3.11/lib-dynload:/opt/crashext/share/crashext/epython:/opt/crashext/lib/python3.11/site-packages \
    PYTHONDONTWRITEBYTECODE=1

RUN useradd --create-home --uid 1000 --shell /bin/bash crashext \
 && mkdir -p /dumps
USER crashext
# crash reads ~/.crashrc at start: load PyKdump and register the crashext commands
RUN crashext crash-init --crashrc > /home/crashext/.crashrc
WORKDIR /dumps
ENTRYPOINT ["/usr/local/bin/crashext-entrypoint"]
CMD ["crashext", "--help"]
