#!/usr/bin/env python
import os
import sys


def main():
    # What Batchsite writes (database, secret key, task files, blobs) is its user's alone.
    # Set here, at the entry points (also batchsite/asgi.py, wsgi.py), not in the settings:
    # importing those changes nothing in the process.
    os.umask(0o077)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchsite.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
