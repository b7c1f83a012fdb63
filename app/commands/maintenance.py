"""Backups and restores of the store."""

import click
from flask import current_app

from ..backup import backup, restore
from ..cli import fail_on_domain_error, oiap_cli


@oiap_cli.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@fail_on_domain_error
def backup_command(file):
    """Copy the database to FILE while the app keeps serving (SQLite online backup)."""
    path = backup(current_app.config["DATABASE"], file)
    click.echo(f"backed up {current_app.config['DATABASE']} to {path} ({path.stat().st_size:,} bytes)")


@oiap_cli.command("restore")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Overwrite the existing database (stop the server first).")
@fail_on_domain_error
def restore_command(file, force):
    """Replace the database with a backup FILE, after checking the backup's integrity."""
    restore(current_app.config["DATABASE"], file, force=force)
    click.echo(f"restored {file} into {current_app.config['DATABASE']}")
