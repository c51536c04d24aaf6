"""`python -m shared.cli ...`: the `seqbatch` command (also what a launcher such as torchrun runs).

A worker of a data-parallel run (WORLD_SIZE > 1) leaves through `os._exit` once its command is
done and its output flushed: at a normal interpreter exit, a thread of the distributed runtime can
still be joinable and abort the process ("terminate called without an active exception"), which
the launcher would report as a failed worker.
"""

import os
import sys

from shared.cli import main
from shared.distributed import world_size_from_env

code = main()
if world_size_from_env() > 1:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
raise SystemExit(code)
