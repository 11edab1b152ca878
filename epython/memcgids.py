# crash runs this for the `memcgids` command registered by crashext_init.py
from crashext.crash_pack import run_command

run_command("memcgids")
