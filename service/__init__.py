"""The users service: a twelve-factor Flask + MySQL web application.

`create_app()` is the application factory. It reads nothing but the settings it is given (or
the environment, when called by gunicorn with none) and opens no connection: each worker
connects on its first request, after gunicorn has forked.
"""

from __future__ import annotations

import os

from flask import Flask

from service import access, db, errors, health, metrics, openapi, users
from service.migrations import load_migrations
from service.settings import Settings, load_settings


def create_app(
    settings: Settings | None = None, *, multiprocess_metrics: bool | None = None
) -> Flask:
    if settings is None:
        settings = load_settings(os.environ)
    if multiprocess_metrics is None:
        multiprocess_metrics = settings.multiprocess_metrics

    app = Flask(__name__)
    app.request_class = access.Request
    app.config.update(
        SETTINGS=settings,
        MIGRATIONS=load_migrations(),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
    )
    app.json.sort_keys = False
    record, observe = metrics.init_app(app, multiprocess=multiprocess_metrics)
    app.wsgi_app = access.Access(app.wsgi_app, record)  # request id, access line, metrics
    db.init_app(app, settings, observe)
    errors.init_app(app)
    app.register_blueprint(users.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    return app
