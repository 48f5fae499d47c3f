#!/usr/bin/env python
import os
import sys

# manage.py's exit code for an error it has said in one line; the launcher
# (arcrm/launcher.py, STEP_SAID) adds nothing to it.
SAID = 2

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "arcrm.settings")
    from django.core.management import execute_from_command_line
    from django.db import OperationalError

    from arcrm.db import unreachable_database
    from arcrm.env import ConfigError

    try:
        execute_from_command_line(sys.argv)
    except ConfigError as error:
        # A setting the environment got wrong: its message names the variable,
        # and a traceback through Django's start-up would only bury it.
        print(f"error: {error}", file=sys.stderr)
        sys.exit(SAID)
    except OperationalError:
        # A database that is not there (or will not let us in) is the same
        # kind of mistake, made in DATABASE_URL or before: said as one line.
        # Any other database error keeps its traceback.
        if (reason := unreachable_database()) is None:
            raise
        print(f"error: cannot connect to the database DATABASE_URL names: {reason}", file=sys.stderr)
        sys.exit(SAID)
