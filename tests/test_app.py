from click.testing import CliRunner

from app.cli import oiap_cli


def test_dashboard_needs_login(client):
    r = client.get("/")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_dashboard_lists_sets(admin_client, db):
    from app.sets.queries import create_set

    create_set(db, "demo-faces", "face_box", "import")
    r = admin_client.get("/")
    assert r.status_code == 200
    assert b"demo-faces" in r.data


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_has_help(app):
    runner = CliRunner()
    # create_app (the app fixture) has attached every area's commands to the group.
    assert {"train", "push", "import-dir", "bulk-annotate", "export"} <= set(oiap_cli.commands)
    for path, cmd in _commands(oiap_cli):
        assert cmd.help or cmd.short_help, f"flask oiap {' '.join(path)} has no help"
        result = runner.invoke(oiap_cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)


def test_init_db_is_idempotent(runner):
    first = runner.invoke(args=["oiap", "init-db"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(args=["oiap", "init-db"])
    assert "up to date" in second.output
