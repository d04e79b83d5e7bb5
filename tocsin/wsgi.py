"""WSGI entry point for production servers (``gunicorn tocsin.wsgi:app``)."""

from adapters.settings import Settings
from tocsin.runtime import Runtime
from web import create_app

app = create_app(Runtime(Settings.from_env()))
