import sys

from sigv4_proxy.cli import main

sys.exit(main())
