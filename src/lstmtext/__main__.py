"""``python -m lstmtext``: the same command line as the ``lstmtext`` console script."""

from lstmtext.cli import main

raise SystemExit(main())
