"""``python -m proxy.cli``: the ``spendgate`` command."""

from proxy.cli import main

raise SystemExit(main())
