"""The ``ncii-hash`` command. Nothing in the library imports this package.

main.py      the parser and the entry point (exit codes, a closed pipe ends quietly)
commands.py  hash, show, match, bank init|add|import|withdraw|export|stats: records in, status out
inputs.py    files in folders (InputWalk, one per run), hash lists, videos
output.py    renderers: hash rows as table / json / csv, match records as text / json, stats, show
progress.py  the tqdm progress bar on stderr
usage.py     exit codes, UsageError, how paths are printed
"""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
