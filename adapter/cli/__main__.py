"""`python -m adapter.cli`: what `dk-adapter serve` re-executes to start with OPENSSL_CONF set."""

import sys

from adapter.cli import main

sys.exit(main())
