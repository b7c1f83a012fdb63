"""The `flask oiap` command group. Thin: parse options, call domain functions, echo."""

import json
import os
import secrets
import sqlite3
import sys

import click
from flask.cli import AppGroup

from .db import get_db, migrate, storage_error_message
from .errors import OiapError


class OiapGroup(AppGroup):
    """The command group; a full disk or read-only store becomes a clear error, not a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (sqlite3.OperationalError, OSError) as e:
            message = storage_error_message(e)
            if message is None:
                raise
            raise click.ClickException(message) from None


oiap_cli = OiapGroup("oiap", help="Open Images Annotation Project commands.")


def echo_applied(applied: list[str]) -> None:
    """Tell the user which migrations ran."""
    if applied:
        for name in applied:
            click.echo(f"applied {name}")
    else:
        click.echo("database is up to date")


def fail_on_domain_error(fn):
    """Turn domain errors into a clean `Error: ...` and a non-zero exit."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OiapError as e:
            raise click.ClickException(str(e)) from None

    return wrapper


def echo_json(value) -> None:
    """Print a value as indented JSON."""
    click.echo(json.dumps(value, indent=2, default=str))


@oiap_cli.command("init-db")
def init_db_command():
    """Create or upgrade the database (idempotent)."""
    echo_applied(migrate(get_db()))
    from .models.builtin import ensure_builtin_models

    ensure_builtin_models(get_db())


@oiap_cli.command("migrate")
def migrate_command():
    """Apply pending migrations (the same as init-db)."""
    echo_applied(migrate(get_db()))


# --- users -------------------------------------------------------------------

user_cli = AppGroup("user", help="Manage team accounts.")
oiap_cli.add_command(user_cli)


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@user_cli.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "reviewer"]), default="reviewer", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@fail_on_domain_error
def user_add(name, role, password_stdin):
    """Add a user with a role (admin or reviewer)."""
    from .auth.users import create_user

    user = create_user(get_db(), name, _read_password(password_stdin), role)
    click.echo(f"added {user.username} ({user.role})")


@user_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def user_list(as_json):
    """List users with their roles."""
    from .auth.users import list_users

    users = list_users(get_db())
    if as_json:
        echo_json(users)
        return
    for u in users:
        state = "" if u["active"] else " (disabled)"
        click.echo(f"{u['id']:>4}  {u['username']:<24} {u['role']}{state}")


@user_cli.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@fail_on_domain_error
def user_passwd(name, password_stdin):
    """Change a user's password."""
    from .auth.users import set_password

    set_password(get_db(), name, _read_password(password_stdin))
    click.echo(f"password changed for {name}")


@user_cli.command("end-sessions")
@click.argument("name")
@fail_on_domain_error
def user_end_sessions(name):
    """End every open session of a user: they must log in again in every browser."""
    from .auth.sessions import end_user_sessions
    from .auth.users import find_user

    db = get_db()
    user = find_user(db, name)
    if user is None:
        raise click.ClickException(f"no user {name!r}; `flask oiap user list` shows them")
    n = end_user_sessions(db, user.id, "ended from the command line", log=True)
    click.echo(f"{n} session(s) of {name} ended")


@user_cli.command("disable")
@click.argument("name")
@fail_on_domain_error
def user_disable(name):
    """Disable a user: their session stops working at the next request."""
    from .auth.users import set_active

    set_active(get_db(), name, False)
    click.echo(f"disabled {name}")


@user_cli.command("enable")
@click.argument("name")
@fail_on_domain_error
def user_enable(name):
    """Enable a disabled user again."""
    from .auth.users import set_active

    set_active(get_db(), name, True)
    click.echo(f"enabled {name}")


@user_cli.command("role")
@click.argument("name")
@click.argument("role", type=click.Choice(["admin", "reviewer"]))
@fail_on_domain_error
def user_role(name, role):
    """Change a user's role (admin or reviewer)."""
    from .auth.users import set_role

    set_role(get_db(), name, role)
    click.echo(f"{name} is now {role}")


@user_cli.command("ensure-admin")
@click.option("--name", default="admin", show_default=True)
@fail_on_domain_error
def user_ensure_admin(name):
    """Create an admin when there is no user yet (password from OIAP_ADMIN_PASSWORD, or printed once)."""
    from .auth.users import create_user, list_users

    db = get_db()
    if list_users(db):
        click.echo("users exist; no admin created")
        return
    password = os.environ.get("OIAP_ADMIN_PASSWORD")
    create_user(db, name, password or (generated := secrets.token_urlsafe(12)), "admin")
    if password:
        click.echo(f"created admin {name!r} with the password from OIAP_ADMIN_PASSWORD")
    else:
        click.echo(
            f"created admin {name!r} with password: {generated}  (shown once; change it with `flask oiap user passwd {name}`)"
        )


# --- sets and stats ----------------------------------------------------------

sets_cli = AppGroup("sets", help="Annotation sets.")
oiap_cli.add_command(sets_cli)


@sets_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def sets_list(as_json):
    """List annotation sets with counts (total, good, bad, unrated; superseded rows are not in total)."""
    from .sets.queries import list_sets

    sets = list_sets(get_db())
    if as_json:
        echo_json(sets)
        return
    click.echo(
        f"{'id':>4}  {'name':<40} {'kind':<18} {'source':<7} {'total':>8} {'good':>7} {'bad':>7} {'unrated':>8}"
        f" {'superseded':>10}"
    )
    for s in sets:
        click.echo(
            f"{s['id']:>4}  {s['name']:<40} {s['kind']:<18} {s['source']:<7} "
            f"{s['total']:>8} {s['good']:>7} {s['bad']:>7} {s['unrated']:>8} {s['superseded']:>10}"
        )


@oiap_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def stats_command(as_json):
    """Counts per set and per split."""
    from .sets.queries import stats

    result = stats(get_db())
    if as_json:
        echo_json(result)
        return
    click.echo(f"images: {result['images']['total']}")
    for split, n in result["images"]["per_split"].items():
        click.echo(f"  {split:<10} {n}")
    for s in result["sets"]:
        click.echo(
            f"{s['name']}: {s['total']} total, {s['good']} good, {s['bad']} bad, {s['unrated']} unrated"
        )
        for split, c in s["per_split"].items():
            click.echo(
                f"  {split:<10} {c['total']} total, {c['good']} good, {c['bad']} bad, {c['unrated']} unrated"
            )
