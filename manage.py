#!/usr/bin/env python
import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arcrm.settings")
    from django.core.management import execute_from_command_line

    from arcrm.env import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as error:
        # A setting the environment got wrong: its message names the variable,
        # and a traceback through Django's start-up would only bury it.
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
