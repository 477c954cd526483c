import sys

from device_host.cli import main

sys.exit(main())
