# crash runs this for the `memcgpins` command registered by crashext_init.py
from crashext.crash_pack import run_command

run_command("memcgpins")
