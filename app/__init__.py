"""oiap: the Open Images Annotation Project, a Flask app with a model in the loop."""

import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from .paths import REPO_ROOT, instance_dir


def _secret_key(instance: Path) -> str:
    # Generated once per instance and kept there, so sessions survive restarts
    # and no key is ever committed.
    path = instance / "secret_key"
    if not path.exists():
        # Written whole under another name, then linked into place: processes starting on a new
        # instance at once (the server and a `flask oiap` command) all end up with the one key that
        # won, never a half-written one.
        tmp = instance / f".secret_key.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


if TYPE_CHECKING:
    from flask import Flask


def create_app(test_config: dict | None = None) -> "Flask":
    """Build the Flask app: config, database, blueprints, CLI, error pages."""
    # Imported here, not above: every `import app.x` runs this file first, and bulk-annotate's worker
    # processes (app/bulk/process_engine.py) import app.annotators and app.bulk, never Flask.
    from flask import Flask

    instance = Path((test_config or {}).get("INSTANCE_PATH") or instance_dir())
    app = Flask(
        __name__,
        instance_path=str(instance),
        instance_relative_config=True,
        template_folder=str(REPO_ROOT / "templates"),
        static_folder=str(REPO_ROOT / "static"),
    )
    from .web import IdConverter

    app.url_map.converters["int"] = IdConverter  # before any route: ids beyond SQLite's range are 404s
    app.config.from_mapping(
        DATABASE=str(instance / "oiap.sqlite3"),
        MODELS_DIR=str(instance / "models"),
        CACHE_DIR=str(instance / "cache"),
        IMAGES_DIR=str(instance / "images"),
        OPEN_IMAGES_DIR=None,
        OPEN_IMAGES_DIR_MAP=None,
        CLAIM_SECONDS=300,
        DB_KEEP_CONNECTIONS=True,
        # Seconds between WAL checkpoints in a background thread (0: SQLite checkpoints in the
        # committing request), and between fsyncs of the WAL alone in that thread: a power loss takes
        # back at most that last second of commits (a killed process none). Off under test, where
        # every test has its own store.
        DB_CHECKPOINT_SECONDS=0 if test_config else 10.0,
        DB_WAL_SYNC_SECONDS=1.0,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
        S3_BUCKET=None,
        S3_PREFIX="oiap",
        S3_ENDPOINT_URL=None,
    )
    if test_config is None:
        app.config.from_pyfile("config.py", silent=True)
        # OIAP_FOO=... overrides FOO; values are parsed as JSON when they can be.
        app.config.from_prefixed_env("OIAP")
    else:
        app.config.from_mapping(test_config)
    instance.mkdir(parents=True, exist_ok=True)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(instance)

    from . import db, web
    from .audit.summary import summarize
    from .classes import display_name
    from .links import http_url
    from .wording import plural, when

    # Links built from imported fields: only http(s) URLs (app/links.py).
    app.jinja_env.filters["http_url"] = http_url
    app.jinja_env.filters["plural"] = plural  # {{ n | plural("annotation") }}
    app.jinja_env.filters["when"] = when  # {{ iso | when }}: "3 Dec 2026 18:05 UTC"
    app.jinja_env.filters["change"] = summarize  # {{ e.before | change(e.after) }}: an event in a few words
    app.jinja_env.filters["class_name"] = display_name  # {{ "/m/0k4j" | class_name }} -> Car
    db.init_app(app)
    web.register_error_handlers(app)
    web.register_favicon(app)

    from .timing import init_timing

    init_timing(app)

    from .request_limits import init_request_limits
    from .serving import hold_while_serving

    init_request_limits(app)
    hold_while_serving(app)

    from .auth import init_auth

    init_auth(app)

    from .sets.views import bp as sets_bp

    app.register_blueprint(sets_bp)
    from .editor.views import bp as editor_bp

    app.register_blueprint(editor_bp)
    from .editor.mask_views import bp as masks_bp

    app.register_blueprint(masks_bp)

    from .audit.views import bp as audit_bp

    app.register_blueprint(audit_bp)
    from .export.views import bp as export_bp

    app.register_blueprint(export_bp)

    from .images.views import bp as images_bp

    app.register_blueprint(images_bp)

    from .review.views import bp as review_bp

    app.register_blueprint(review_bp)
    from .models.views import bp as models_bp

    app.register_blueprint(models_bp)

    from .cli import oiap_cli
    from .commands import register_all

    # Each area's module attaches its commands to the group (commands import cli, never the reverse).
    register_all()
    app.cli.add_command(oiap_cli)
    from .gcfreeze import freeze_startup

    freeze_startup(app)
    return app
