import re

from setuptools import find_packages, setup

# one version: crashext/__init__.py (crashext --version, the bundle's manifest)
with open("crashext/__init__.py", encoding="utf-8") as f:
    VERSION = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)

setup(
    name="crashext",
    version=VERSION,
    description="Why did this Linux kernel crash, or why is it about to: memcg ids, "
                "buddy fragmentation and allocation failures, in crash, drgn or from logs",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="GPL-2.0-or-later",
    python_requires=">=3.8",
    packages=find_packages(include=["crashext", "crashext.*"]),
    package_data={"crashext": ["kb/*.toml", "data/*", "report/templates/*.j2"]},
    include_package_data=True,
    # the scripts crash runs for each command (found by `crashext crash-init`)
    data_files=[("share/crashext/epython", ["epython/crashext_init.py", "epython/memcgids.py", "epython/memcgpins.py",
                                            "epython/frag.py", "epython/allocfail.py",
                                            "epython/triage.py", "epython/report.py"])],
    install_requires=["tabulate>=0.8", "tomli>=1.1; python_version < \"3.11\""],
    extras_require={
        "drgn": ["drgn>=0.1.0"],
        "exporter": ["prometheus-client>=0.17"],  # crashext exporter (start_http_server returns the server)
        "report": ["matplotlib>=3.5", "Jinja2>=3.0"],  # crashext report (HTML page)
        "test": ["pytest>=7", "pytest-xdist>=3", "hypothesis>=6", "build>=1", "vermin>=1.5",
                 "pyyaml>=5"],  # build: tests/test_packaging.py; pyyaml: deploy/ checks; xdist: scripts/test
        # the log scan (crashext.sources.logscan): one-pass multi-literal search (hyperscan),
        # newline counting between records (numpy); py-spy: benchmarks/
        "fast": ["hyperscan>=0.7; platform_machine == 'x86_64'", "numpy>=1.17"],
        "bench": ["py-spy>=0.3"],
    },
    entry_points={"console_scripts": ["crashext = crashext.cli:main"],
                  # drgn >= 0.1.0 loads it: memcgids, frag, allocfail, triage as drgn commands
                  "drgn.plugins": ["crashext = crashext.drgn_plugin"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: System :: Operating System Kernels :: Linux",
    ],
)
