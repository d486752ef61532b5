"""Batchsite settings: one module, everything from the environment.

A fresh clone runs on the embedded default (SQLite in ./var; the dashboard polls
the database) with no variable set. Scale-out sets DATABASE_URL and REDIS_URL.

Importing this module writes nothing but the secret key (and its folder), once,
when none is configured: each folder named here is made by the code that writes
into it, and the umask is set by the entry points (manage.py, asgi.py, wsgi.py).
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
import plotly

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Local state of the embedded set-up: database, secret key, task directories.
# Private to the user Batchsite runs as: it holds the database, the secret key and
# every account's files. Whoever writes in it first makes it, 0700 (the secret key
# below, the SQLite backend in batchsite/sqlite3, the worker, the blob storage), and
# the entry points set the umask to 077, so what the processes create goes 0600/0700.
DATA_DIR = Path(env_str("BATCHSITE_DATA_DIR", str(BASE_DIR / "var")))


def _secret_key() -> str:
    """The key from the environment, else one generated once into DATA_DIR.

    Never a fixed default: a key in the repository would be a key for everyone.
    """
    from_env = env_str("BATCHSITE_SECRET_KEY") or env_str("SECRET_KEY")
    if from_env:
        return from_env
    path = DATA_DIR / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_EXCL: when two processes start together, one writes and both read it.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key


SECRET_KEY = _secret_key()
DEBUG = env_bool("BATCHSITE_DEBUG", False)
ALLOWED_HOSTS = env_list("BATCHSITE_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("BATCHSITE_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served as static files (no CDN)
    "channels",
    "django_htmx",
    "template_partials",
    "axes",  # login throttling (see "Web hardening" below)
    "csp",
    "batchapi",
    "accounts",
    "jobs",
    "tasks",
    "pools",
    "nodes",
]

MIDDLEWARE = [
    # First: text no database stores alike (NUL, lone surrogates) never reaches the rest.
    "batchapi.middleware.input_check_middleware",
    "django.middleware.security.SecurityMiddleware",
    "batchsite.staticfiles.StaticFilesMiddleware",  # WhiteNoise
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "batchsite.csp.ContentSecurityPolicyMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as axes asks: it turns a lockout into the lockout page
]

ROOT_URLCONF = "batchsite.urls"
WSGI_APPLICATION = "batchsite.wsgi.application"
ASGI_APPLICATION = "batchsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.batch_account",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
# SQLite needs WAL, IMMEDIATE transactions and a busy timeout once a worker and the
# web server both write, else they fail with "database is locked": in the default
# journal mode readers and a writer shut each other out (WAL lets readers go on while
# one writes), and a transaction that reads and then writes gets the error at once,
# never waiting out the timeout (IMMEDIATE takes the write lock at BEGIN instead).
SQLITE_OPTIONS = {
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A PostgreSQL connection costs milliseconds to open; daphne runs all sync code in
    # one thread, so keeping that thread's connection saves it on every request and
    # every live update. Health checks replace a connection the server dropped.
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("BATCHSITE_CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's backend, which also makes the database's folder when it is missing.
    DATABASES["default"]["ENGINE"] = "batchsite.sqlite3"
    DATABASES["default"]["OPTIONS"] = dict(SQLITE_OPTIONS)
    # A file, not :memory:, so worker subprocesses started by tests see the data.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Live updates ---------------------------------------------------------------
# With Redis each commit publishes its job's pk (jobs.events) and every web process's
# watcher looks at once; without it the watchers poll the database. The WebSocket
# consumers use no channel layer.
REDIS_URL = env_str("REDIS_URL")

# --- Auth ---------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

# --- I18N / static ------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
# collectstatic's target (collectstatic makes it). Until it has run, the finders serve
# every file (WHITENOISE_USE_FINDERS below, and batchsite.staticfiles).
STATIC_ROOT = DATA_DIR / "static"
# plotly.js comes from the plotly wheel itself: no CDN, no second copy in the repository.
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", Path(plotly.__file__).parent / "package_data")]
# Serve straight from the app and project folders: `make run` needs no collectstatic.
WHITENOISE_USE_FINDERS = True

# --- REST API -------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: its WWW-Authenticate header makes anonymous calls a 401, not a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "accounts.shared_key.SharedKeyAuthentication",  # what the azure-batch SDK and az CLI send
        "tasks.tokens.TaskTokenAuthentication",  # AZ_BATCH_AUTHENTICATION_TOKEN
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "batchapi.renderers.BatchJSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "batchapi.errors.batch_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

# --- OpenAPI schema of the Batch API (drf-spectacular) ---------------------------------
# Served at /api/schema/ (YAML, or JSON with ?format=json) and /api/docs/ (Swagger UI),
# to logged-in users and token holders only. Only the paths below /batch are described
# (batchapi.schema), relative to the account endpoint as Batch's own REST docs write them.
SPECTACULAR_SETTINGS = {
    # nodeDeallocationOption and nodeRebootOption take the same values: one enum, named so.
    "ENUM_NAME_OVERRIDES": {"NodeDeallocationOptionEnum": "pools.bodies.DEALLOCATION"},
    "TITLE": "Batchsite Batch API",
    "DESCRIPTION": (
        "Azure Batch's REST API for jobs, tasks and task files, as Batchsite serves it. Paths are relative "
        "to the account endpoint (/batch). Bodies are camelCase JSON; every error comes as a BatchError."
    ),
    "VERSION": None,  # the newest api-version, set by batchapi.schema.describe_batch
    "OAS_VERSION": "3.0.3",
    # Request bodies (what the serializers accept) apart from responses (what the views render).
    "COMPONENT_SPLIT_REQUEST": True,
    "DISABLE_DOCSTRING_DESCRIPTIONS": True,  # docstrings are written for developers, not API users
    "SCHEMA_PATH_PREFIX": "/batch",
    "SCHEMA_PATH_PREFIX_TRIM": True,
    "SERVERS": [{"url": "/batch", "description": "the account endpoint of this Batchsite"}],
    "PREPROCESSING_HOOKS": ["batchapi.schema.batch_operations_only"],
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "batchapi.schema.describe_batch"],
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # A task's token reaches its own job only, not the documentation.
    "SERVE_AUTHENTICATION": [
        "rest_framework.authentication.TokenAuthentication",
        "accounts.shared_key.SharedKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "persistAuthorization": False},
}

# --- Batch ------------------------------------------------------------------------
# Where workers create task directories (Batch's AZ_BATCH_NODE_ROOT_DIR). The file
# API reads from here too, so web and workers must share it.
BATCHSITE_NODE_ROOT = Path(env_str("BATCHSITE_NODE_ROOT", str(DATA_DIR / "nodes")))
# Batch's blob storage, for resourceFiles and outputFiles: its top-level folders are
# containers. Any Django storage backend may take the place of this folder.
BATCHSITE_STORAGE_ROOT = Path(env_str("BATCHSITE_STORAGE_ROOT", str(DATA_DIR / "storage")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "batchsite": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                  "OPTIONS": {"location": str(BATCHSITE_STORAGE_ROOT)}},
}
# Shared Key requests must be dated within this of the server's clock (no replays).
BATCHSITE_SHARED_KEY_SKEW = timedelta(minutes=env_int("BATCHSITE_SHARED_KEY_SKEW_MINUTES", 15))
# The account `make run` and the migrations create for jobs that have none.
BATCHSITE_DEFAULT_ACCOUNT = env_str("BATCHSITE_DEFAULT_ACCOUNT", "batchsite")
# --- Pools (pools/) ------------------------------------------------------------------
# The pool a node started without --pool joins, and a job without poolInfo runs in;
# `make run` has one node of BATCHSITE_WORKER_SLOTS slots in it.
BATCHSITE_DEFAULT_POOL = env_str("BATCHSITE_DEFAULT_POOL", "local")
BATCHSITE_WORKER_SLOTS = env_int("BATCHSITE_WORKER_SLOTS", 2)
# A job that names a pool that does not exist gets one, made on this machine with one
# node, so that the Azure tutorials' `--pool-id my-pool` just works. A deployment
# that wants pools made only on purpose turns this off: such jobs' tasks then wait.
BATCHSITE_AUTO_POOLS = env_bool("BATCHSITE_AUTO_POOLS", True)
# The most nodes a pool may ask for (each target): a typo of 1,000,000 is a 400, not a million rows.
BATCHSITE_MAX_NODES_PER_POOL = env_int("BATCHSITE_MAX_NODES_PER_POOL", 1000)
# The vmSize of the pools Batchsite makes itself.
BATCHSITE_LOCAL_VM_SIZE = env_str("BATCHSITE_LOCAL_VM_SIZE", "standard_d2s_v3")
# How long a completed task's directory is kept when its constraints say nothing
# (the Batch default is 7 days).
BATCHSITE_DEFAULT_RETENTION = timedelta(days=env_int("BATCHSITE_DEFAULT_RETENTION_DAYS", 7))
# The account endpoint tasks are told (AZ_BATCH_ACCOUNT_URL) to call back with their token.
BATCHSITE_ACCOUNT_URL = env_str("BATCHSITE_ACCOUNT_URL", "http://127.0.0.1:8000/batch")
# How often (seconds) a worker writes its heartbeat.
BATCHSITE_HEARTBEAT_SECONDS = env_int("BATCHSITE_HEARTBEAT_SECONDS", 5)
# A worker whose heartbeat is older than this is dead; its tasks are requeued.
BATCHSITE_WORKER_TIMEOUT = timedelta(seconds=env_int("BATCHSITE_WORKER_TIMEOUT_SECONDS", 30))
# --- Task containment (nodes/sandbox.py) ---------------------------------------------
# Workers run every command in a bubblewrap sandbox, as this unprivileged user when
# the worker is root (created if missing). Without a sandbox a worker refuses to start
# unless BATCHSITE_ALLOW_UNCONFINED_TASKS (or `worker --allow-unconfined`) says tasks may see
# everything the worker sees.
BATCHSITE_BWRAP = env_str("BATCHSITE_BWRAP", "bwrap")
BATCHSITE_TASK_USER = env_str("BATCHSITE_TASK_USER", "batchsite-task")
BATCHSITE_ALLOW_UNCONFINED_TASKS = env_bool("BATCHSITE_ALLOW_UNCONFINED_TASKS", False)
# Users a task's userIdentity.userName may name (Batch's pool user accounts); never root.
BATCHSITE_NODE_USERS = env_list("BATCHSITE_NODE_USERS", "")
# More paths to hide from tasks, beside the data directory, the storage, the database,
# the installation and the worker's home.
BATCHSITE_SANDBOX_HIDE = env_list("BATCHSITE_SANDBOX_HIDE", "")
# Each of a task's /tmp and /dev/shm (memory) holds at most this much.
BATCHSITE_TASK_TMP_BYTES = env_int("BATCHSITE_TASK_TMP_MB", 1024) * 1024 * 1024

# Rows of task counts per job: workers finishing tasks of one job at once spread
# their increments over these instead of queueing on one row lock.
BATCHSITE_COUNT_SHARDS = 8
# The Batch service's own limits.
BATCHSITE_MAX_RESULTS = 1000
BATCHSITE_MAX_TASKS_PER_COLLECTION = 100
BATCHSITE_MAX_COLLECTION_BYTES = 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024

# --- Web hardening ----------------------------------------------------------------
# Login throttling (django-axes, database handler: works on SQLite and PostgreSQL,
# no server to run). Failures count per username *and* address: a guesser is stopped
# after a few tries, yet nobody can lock the admin out from elsewhere by failing on
# purpose, and a shared address (NAT) does not lock out its other users. Behind a
# reverse proxy start daphne with --proxy-headers so the address is the client's (the
# proxy must overwrite X-Forwarded-For: an address the client picks limits nothing).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out login before the password is checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env_bool("BATCHSITE_LOGIN_THROTTLE", True)
AXES_FAILURE_LIMIT = env_int("BATCHSITE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("BATCHSITE_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# Attempts made while locked out are refused without being written down: the lockout
# ends a fixed time after the last counted failure, and hammering the form cannot
# grow a row or keep the database busy.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Only failures are kept (and pruned as they expire); a row for every successful
# login would grow without bound, and every test login would write one.
AXES_DISABLE_ACCESS_LOG = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False  # no start-up banner on every manage.py command; failures are still logged

# Content-Security-Policy (django-csp 4). Scripts only from this site: no inline
# script, no eval (htmx is told not to eval either, see base.html). Styles allow
# 'unsafe-inline': plotly.js adds <style> elements as it draws, DRF's browsable API
# has an inline <style> (its code colours), and the progress bars' widths are style
# attributes, in fragments htmx swaps in too (with style-src 'self' alone the browser
# test counted ~80 violations from these three). A style cannot run code, and
# script-src stays strict. connect-src: 'self' covers
# the page's own ws:/wss: socket in current browsers; older ones need the host
# spelled out, which batchsite/csp.py adds for the request's own host.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# Behind https (a reverse proxy that terminates TLS, say). Off by default: the
# embedded set-up is plain http on 127.0.0.1, where secure cookies would never be sent.
BATCHSITE_HTTPS = env_bool("BATCHSITE_HTTPS", False)
SESSION_COOKIE_SECURE = BATCHSITE_HTTPS
CSRF_COOKIE_SECURE = BATCHSITE_HTTPS
# Browsers remember HSTS: once on, the site is https-only for them for this long.
SECURE_HSTS_SECONDS = env_int("BATCHSITE_HSTS_SECONDS", 365 * 24 * 3600) if BATCHSITE_HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("BATCHSITE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("BATCHSITE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = BATCHSITE_HTTPS and env_bool("BATCHSITE_SSL_REDIRECT", False)
# Only when told: a proxy that sets this header (and strips it from clients) makes a
# request count as https; trusting it without such a proxy lets any client claim https.
_proxy_ssl_header = env_str("BATCHSITE_PROXY_SSL_HEADER")  # e.g. X-Forwarded-Proto
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
# Always on (Django's defaults, spelled out so a reader sees them).
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("BATCHSITE_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
