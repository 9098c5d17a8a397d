import sys

from greentrain.cli import main

sys.exit(main())
