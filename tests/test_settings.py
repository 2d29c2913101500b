"""The settings file: where it lives, what it accepts, and that saving keeps the other keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from fga_tui.io.errors import InputError
from fga_tui.settings import Settings, config_path, load_settings, parse_settings, save_setting


def test_config_path_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("FGA_TUI_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path() == tmp_path / "xdg" / "fga-tui" / "settings.toml"
    monkeypatch.setenv("FGA_TUI_CONFIG", str(tmp_path / "mine.toml"))
    assert config_path() == tmp_path / "mine.toml"


def test_no_file_means_no_settings(tmp_path):
    assert load_settings(tmp_path / "absent.toml") == Settings()


def test_a_full_file_is_read(tmp_path):
    s = parse_settings(
        'theme = "nord"\ndevice = "cuda:1"\nsnapshot_dir = "~/snaps"\n', tmp_path / "s.toml"
    )
    assert s == Settings("nord", "cuda:1", Path("~/snaps").expanduser())


@pytest.mark.parametrize(
    "text, reason",
    [
        ('device = "cuda:x"\n', "device 'cuda:x' is not one of"),
        ('theme = ""\n', "theme must be a non-empty string"),
        ("[theme]\nname = 1\n", "theme must be a non-empty string"),
        ('speed = "fast"\n', "unknown setting 'speed'"),
        ('theme = "nord\n', "not valid TOML"),
    ],
)
def test_bad_settings_name_the_file(tmp_path, text, reason):
    where = tmp_path / "s.toml"
    with pytest.raises(InputError) as info:
        parse_settings(text, where)
    assert info.value.path == str(where)
    assert reason in info.value.reason


def test_saving_one_setting_keeps_the_others(tmp_path):
    path = tmp_path / "sub" / "settings.toml"
    save_setting("device", "cpu", path)
    save_setting("theme", "ansi-dark", path)
    save_setting("theme", "nord", path)
    assert load_settings(path) == Settings(theme="nord", device="cpu")
    assert path.read_text().count("theme") == 1


def test_a_broken_file_is_not_overwritten(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_text("theme = \n")
    with pytest.raises(InputError):
        save_setting("theme", "nord", path)
    assert path.read_text() == "theme = \n"


def test_undecodable_file_is_one_line(tmp_path):
    path = tmp_path / "settings.toml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError) as info:
        load_settings(path)
    assert "cannot read the settings file" in info.value.reason
