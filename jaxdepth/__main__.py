import sys

from jaxdepth.cli import main

sys.exit(main())
