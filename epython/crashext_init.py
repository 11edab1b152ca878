# Loaded once in a crash session (after "extend mpykdump.so"), e.g. from
# ~/.crashrc:  epython /path/to/epython/crashext_init.py
# Registers every crashext command; each then runs epython/<name>.py.
# PYKDUMPPATH must name this directory and the one holding the crashext
# package and tabulate: `crashext crash-init` prints the lines to use.
HOW = ("PYKDUMPPATH must name the Python stdlib, crashext and tabulate: set it with "
       "`crashext crash-init --export` (or a bundle's env.sh) in the shell that starts crash")
try:
    from crashext.crash_pack import IMPORT_ERRORS, register_all
except ImportError as exc:
    # PyKdump's Python lacks its stdlib or crashext: one line, not a traceback
    print("crashext: cannot load: cannot import %s (%s); %s"
          % (getattr(exc, "name", None) or "crashext", exc, HOW))
else:
    names = register_all()
    for cmd, why in sorted(IMPORT_ERRORS.items()):
        print("crashext: %s not registered: %s" % (cmd, why))
    if names:
        print("crashext: registered " + ", ".join(names) + " (help NAME for usage)")
    else:
        print("crashext: registered nothing; %s" % HOW)
# crash in batch mode (-s < script) shows Python's output only when flushed
import sys  # noqa: E402
sys.stdout.flush()
