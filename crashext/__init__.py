"""crashext: find out why a Linux kernel crashed, or is about to.

Analyses of memory cgroups, the buddy allocator and the kernel log that run
inside the ``crash`` utility (through PyKdump), standalone through drgn on a
vmcore or a live kernel, and on saved text.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
