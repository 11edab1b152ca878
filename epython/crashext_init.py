# Loaded once in a crash session (after "extend mpykdump.so"), e.g. from
# ~/.crashrc:  epython /path/to/epython/crashext_init.py
# Registers every crashext command; each then runs epython/<name>.py.
# PYKDUMPPATH must name this directory and the one holding the crashext
# package and tabulate: `crashext crash-init` prints the lines to use.
try:
    from crashext.crash_pack import register_all
except ImportError as exc:
    # PyKdump's Python lacks its stdlib or crashext: one line, not a traceback
    print("crashext: cannot load (%s); PYKDUMPPATH must name the Python stdlib, crashext "
          "and tabulate: set it with `crashext crash-init --export` (or a bundle's env.sh) "
          "in the shell that starts crash" % exc)
else:
    names = register_all()
    print("crashext: registered " + (", ".join(names) if names else "nothing") +
          " (help NAME for usage)")
