import os

from django.core.wsgi import get_wsgi_application

os.umask(0o077)  # what Batchsite writes is its user's alone (as in manage.py)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "batchsite.settings")
application = get_wsgi_application()
