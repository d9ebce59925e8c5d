"""Hold ``fade.io.lock_folder(FOLDER, command=COMMAND)`` in a separate process until stdin closes.

Run by the lock tests as ``python tests/hold_lock.py FOLDER COMMAND``; prints ``locked`` once it holds
the lock. It loads fade/io.py alone (no torch import), so the second process starts in milliseconds.
"""

import importlib.util
import sys
from pathlib import Path

path = Path(importlib.util.find_spec("fade").submodule_search_locations[0]) / "io.py"
spec = importlib.util.spec_from_file_location("fade_io", path)
fade_io = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fade_io)
with fade_io.lock_folder(sys.argv[1], command=sys.argv[2]):
    print("locked", flush=True)
    sys.stdin.read()
