"""Our changes to PyKdump's sources, applied by scripts/build-pykdump.

PyKdump (stancheff/pykdump, the pinned commit) is never copied into this
project: each change below is an edit of a few lines of PyKdump's own
``Extension/`` sources, found by a pattern that must match exactly the
number of times given, so a PyKdump that is not the pinned one stops the
build with one line instead of being patched wrongly.  Each edit says why.

- ``PYTHON311``: for Debian's Python 3.11 (every crash).
- ``ONE_BUILD``: a PyKdump loads only into the crash it was built for, and
  only one into a session (every crash).
- ``GDB16``: PyKdump's gdb glue (``gdbspec10.C``, written for gdb 10's
  internal API) ported to gdb 16.3, the gdb of crash 9.x.
"""

import re
from pathlib import Path
from typing import List, NamedTuple

__all__ = ["Edit", "PatchError", "PYTHON311", "ONE_BUILD", "GDB16", "apply_edits"]


class PatchError(Exception):
    pass


class Edit(NamedTuple):
    """Replace ``pattern`` (a regular expression) by ``repl`` in ``file``."""
    file: str       #: path under PyKdump's Extension/
    pattern: str
    repl: str
    count: int      #: the number of matches the pinned PyKdump has
    why: str        #: what changed, in a few words (the build log shows it)


def apply_edits(ext_dir: Path, edits: List[Edit], log=None) -> None:
    """Apply ``edits`` in order to the sources under ``ext_dir``."""
    for e in edits:
        path = ext_dir / e.file
        text = path.read_text()
        new, n = re.subn(e.pattern, e.repl, text, flags=re.M)
        if n != e.count:
            raise PatchError("%s: %s: %d matches of %r where the pinned PyKdump has %d"
                             % (e.file, e.why, n, e.pattern, e.count))
        path.write_text(new)
        if log is not None:
            log.write("patched %s (%d): %s\n" % (e.file, n, e.why))


# ---- Python 3.11 -----------------------------------------------------------

PYTHON311 = [
    # Python 3.11 removed eval.h (PyEval_EvalCode is in Python.h since 3.0);
    # keep it for the older Pythons PyKdump also builds with.
    Edit("epython.c", r"^#include <eval.h>.*$",
         "#if PY_VERSION_HEX < 0x030B0000\n#include <eval.h>\n#endif", 1,
         "eval.h only before Python 3.11"),
]

# ---- one PyKdump, the right one, per session -------------------------------

#: Put ahead of _init(): what _init() and _fini() need to decline a load.
_DECLINE = r'''/* crashext: set when _init() declines to load this PyKdump; _fini() then
   has nothing to undo */
#include <dlfcn.h>
static int crashext_declined;

static const char *
crashext_self(void)
{
  Dl_info info;
  return dladdr((void *)crashext_self, &info) && info.dli_fname ?
    info.dli_fname : "mpykdump.so";
}

void _init(void)  {'''

#: Replaces PyKdump's check, which compares the first character of the two
#: versions only and exits crash when they differ.
_CHECK = r'''  /* crashext: a PyKdump is built against one crash's defs.h, whose
     structures differ between releases (8.0.2 and 8.0.6 alike), so it
     loads only into the crash version it was built for; anything else is
     declined in one line and crash goes on (crash unloads an extension
     that registers no command).  Nothing of crash's is read before this
     check but the version string.  A second PyKdump in one session (a
     ~/.crashrc line and crashext's own, say) is declined too: its commands
     would be duplicates, and its _fini() would finalize the Python the
     first one runs.  */
  if (strcmp(build_crash_version, build_version) != 0) {
    fprintf(fp, "%s: built for crash %s, this is crash %s: not loaded\n",
            crashext_self(), build_crash_version, build_version);
    crashext_declined = 1;
    return;
  }
  if (get_command_table_entry("epython")) {
    fprintf(fp, "%s: a PyKdump is loaded already (\"epython\" exists): "
            "not loading a second one\n", crashext_self());
    crashext_declined = 1;
    return;
  }'''

ONE_BUILD = [
    Edit("epython.c", r"^void _init\(void\)  \{$", _DECLINE.replace("\\", "\\\\"), 1,
         "a flag and the file's own name for declining a load"),
    # the version check runs before anything else reads crash's structures
    # (pc->flags is read for MINIMAL_MODE right after the debug setting)
    Edit("epython.c",
         r"^  /\* Before doing anything else, check whether the versions(?:.*\n)*?"
         r"  if \(build_crash_version\[0\] != build_version\[0\]\) \{\n(?:.*\n)*?    exit\(1\);\n  \}\n",
         "", 1, "PyKdump's own check of the major version (it exits crash)"),
    Edit("epython.c", r"^(    debug = atoi\(getenv\(\"PYKDUMPDEBUG\"\)\);\n)",
         r"\1" + _CHECK.replace("\\", "\\\\") + "\n", 1,
         "load only into the crash built against, once a session"),
    Edit("epython.c", r"^(void _fini\(void\) \{\n(?:.*\n)*?  struct command_table_entry \*ce;\n)",
         r"\1\n  if (crashext_declined)   /* crashext: nothing was loaded */\n    return;\n", 1,
         "_fini undoes nothing after a declined load"),
]

# ---- gdb 16 ----------------------------------------------------------------
# gdbspec10.C reads gdb's types through the accessor macros and free
# functions of gdb 10.  By gdb 16.3 each is a member function of gdb's
# classes; the edits below rename the call sites, one rule per rename.  Each
# "gdb 16.3 has" below is read in that release's own headers (gdbtypes.h,
# symtab.h, expression.h, value.h); where gdb's ChangeLog dates a removal it
# is named.

GDB16 = [
    # gdb 15's NEWS: "Building GDB and GDBserver now requires a C++17
    # compiler"; gdb's headers use C++17 (std::optional, if constexpr).
    # GNU extensions as gdb builds itself (g++'s default).
    Edit("Makefile", r"^CXXFLAGS := -std=c\+\+11$", "CXXFLAGS := -std=gnu++17", 1,
         "gdb 16's headers need C++17"),
    # TYPE_STUB (ChangeLog-2020, 2020-09-14: "Remove, replace all uses with
    # type::is_stub").
    Edit("gdbspec10.C", r"\bTYPE_STUB\((\w+)\)", r"\1->is_stub ()", 1,
         "TYPE_STUB(t) is t->is_stub ()"),
    # TYPE_UNSIGNED (ChangeLog-2020, 2020-09-14: "Remove, replace all uses
    # with type::is_unsigned").
    Edit("gdbspec10.C", r"\bTYPE_UNSIGNED\((\w+)\)", r"\1->is_unsigned ()", 1,
         "TYPE_UNSIGNED(t) is t->is_unsigned ()"),
    # TYPE_LENGTH: gdb 16.3 has type::length ().
    Edit("gdbspec10.C", r"\bTYPE_LENGTH\((\w+)\)", r"\1->length ()", 1,
         "TYPE_LENGTH(t) is t->length ()"),
    # TYPE_TARGET_TYPE: gdb 16.3 has type::target_type ().
    Edit("gdbspec10.C", r"\bTYPE_TARGET_TYPE\((\w+)\)", r"\1->target_type ()", 4,
         "TYPE_TARGET_TYPE(t) is t->target_type ()"),
    # TYPE_FIELD_NAME(t, i): gdb 16.3 has field::name () on type::field (i).
    Edit("gdbspec10.C", r"\bTYPE_FIELD_NAME\((\w+), (\w+)\)", r"\1->field (\2).name ()", 3,
         "TYPE_FIELD_NAME(t, i) is t->field (i).name ()"),
    # TYPE_FIELD_BITSIZE(t, i): gdb 16.3 has field::bitsize ().
    Edit("gdbspec10.C", r"\bTYPE_FIELD_BITSIZE\((\w+), (\w+)\)", r"\1->field (\2).bitsize ()", 1,
         "TYPE_FIELD_BITSIZE(t, i) is t->field (i).bitsize ()"),
    # TYPE_FIELD_BITPOS of a struct member: gdb 16.3 has
    # field::loc_bitpos (), which asserts that the field's location is a
    # bit position (it is, for a C struct or union member).
    Edit("gdbspec10.C", r"int boffset = TYPE_FIELD_BITPOS\(type, i\);",
         "int boffset = type->field (i).loc_bitpos ();", 1,
         "a member's TYPE_FIELD_BITPOS is field::loc_bitpos ()"),
    # TYPE_FIELD_BITPOS of an enumerator: gdb 10 kept an enumerator's value
    # in the same union as a bit position, so the macro read it; gdb 16.3
    # keeps it as its own kind (FIELD_LOC_KIND_ENUMVAL) and loc_bitpos ()
    # asserts on it: the value is field::loc_enumval ().
    Edit("gdbspec10.C", r"long bp = TYPE_FIELD_BITPOS \(type, i\);",
         "long bp = type->field (i).loc_enumval ();", 1,
         "an enumerator's value is field::loc_enumval ()"),
    # lookup_symbol's domain: gdb 16.3 takes domain_search_flags, whose
    # SEARCH_STRUCT_DOMAIN is the struct/union/enum tag namespace that
    # STRUCT_DOMAIN named.
    Edit("gdbspec10.C", r"lookup_symbol\(tagname, NULL, STRUCT_DOMAIN,",
         "lookup_symbol(tagname, NULL, SEARCH_STRUCT_DOMAIN,", 1,
         "STRUCT_DOMAIN is the search flag SEARCH_STRUCT_DOMAIN"),
    # struct symbol's type is private in gdb 16.3: symbol::type ().
    Edit("gdbspec10.C", r"ftype=sym->type;", "ftype=sym->type ();", 1,
         "symbol's type member is symbol::type ()"),
    # evaluate_type (expr): gdb 16.3 has expression::evaluate_type ().
    Edit("gdbspec10.C", r"\bevaluate_type \(expr\.get\(\)\)", "expr->evaluate_type ()", 3,
         "evaluate_type (e) is e->evaluate_type ()"),
    # value_type (v): gdb 16.3 has value::type ().
    Edit("gdbspec10.C", r"\bvalue_type\((\w+)\)", r"\1->type ()", 3,
         "value_type(v) is v->type ()"),
]
