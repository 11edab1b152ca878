# crash runs this for the `report` command registered by crashext_init.py
from crashext.crash_pack import run_command

run_command("report")
