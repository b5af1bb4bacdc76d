"""Every command's ``--help`` says what it does and which settings it reads; the README lists every setting."""

from __future__ import annotations

import argparse
import re

import pytest

from streamer.cli.main import build_parser
from streamer.config import REPO_ROOT, Settings

pytestmark = pytest.mark.unit

KAFKA_COMMANDS = {"worker", "produce", "tail", "topics", "alerts", "ack", "record", "replay"}
# Read straight from the environment, outside Settings: the recordings folder and, before Settings exist, the log format.
ENV_ONLY = {"VITALS_RECORDINGS_DIR"}


def _commands(parser: argparse.ArgumentParser, prefix: str = "") -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[f"{prefix}{name}"] = sub
                found.update(_commands(sub, f"{prefix}{name} "))
    return found


COMMANDS = _commands(build_parser())
SETTINGS = {f"VITALS_{name.upper()}" for name in Settings.model_fields} | ENV_ONLY


def test_every_command_is_seen() -> None:
    assert {"worker", "topics", "ack", "eval signals", "eval af", "kafka", "golden", "import"} <= COMMANDS.keys()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_says_what_the_command_does_and_what_it_reads(name: str) -> None:
    text = COMMANDS[name].format_help()
    description = COMMANDS[name].description or ""
    assert len(description) > 80, f"`{name} --help` explains nothing"
    if name != "eval":
        assert "Reads" in description, f"`{name} --help` does not say which settings it reads"
    if name in KAFKA_COMMANDS:
        assert "VITALS_KAFKA_BOOTSTRAP" in text and "VITALS_TOPIC_PREFIX" in text
    named = {m for m in re.findall(r"VITALS_[A-Z0-9_]*[A-Z0-9]", description) if not m.endswith("_")}
    unknown = {m for m in named if m not in SETTINGS and not any(s.startswith(m + "_") for s in SETTINGS)}
    assert not unknown, f"`{name} --help` names settings that do not exist: {unknown}"


def test_readme_settings_table_lists_every_setting() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    table = readme[readme.index("## Settings") :]
    missing = sorted(s for s in SETTINGS if s not in table)
    assert not missing, f"README settings table lacks {missing}"
