"""`python -m shared.cli ...`: the `seqbatch` command (also what a launcher such as torchrun runs)."""

from shared.cli import main

raise SystemExit(main())
