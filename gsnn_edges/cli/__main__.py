import sys

from gsnn_edges.cli import main

sys.exit(main())
