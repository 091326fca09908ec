"""Settings: one spelling per variable, checked when loaded, and a README that cannot drift."""

from __future__ import annotations

import paths
import pytest

from bot.settings import Security, Settings, readme_with_table
from indexer.errors import ConfigError


def test_readme_configuration_table_is_generated_from_the_settings():
    readme = (paths.REPO / "README.md").read_text(encoding="utf-8")
    assert readme == readme_with_table(readme), "run `python -m bot.settings` to refresh README"
    for name in ("CLERK_TOP_K", "CLERK_MAX_QUESTION_CHARS", "SLACK_BOT_TOKEN"):
        assert f"| `{name}` |" in readme


def test_values_are_parsed_once_when_loaded():
    settings = Settings.from_env(
        {
            "CLERK_EMAIL_ALLOWED": " a@kent.gov.uk, @Bradford.gov.uk ,",
            "CLERK_SMTP_SECURITY": "TLS",
            "CLERK_TOP_K": "3",
        }
    )
    assert settings.email.allowed == ("a@kent.gov.uk", "@Bradford.gov.uk")
    assert settings.email.smtp_security is Security.TLS
    assert settings.index.top_k == 3


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CLERK_IMAP_SECURITY", "ssl"), ("CLERK_TOP_K", "five"), ("CLERK_SYNC_DELAY", "soon")],
)
def test_a_bad_value_is_an_error_naming_the_variable(variable, value):
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env({variable: value})


def test_an_unknown_override_is_refused():
    with pytest.raises(ConfigError, match="CLERK_NO_SUCH"):
        Settings.from_env({}, CLERK_NO_SUCH=1)


def test_secrets_are_masked_when_described():
    settings = Settings.from_env({"SLACK_BOT_TOKEN": "xoxb-secret", "CLERK_IMAP_PASSWORD": "pw"})
    shown = {env: value for env, value, _ in settings.describe()}
    assert [shown["SLACK_BOT_TOKEN"], shown["CLERK_IMAP_PASSWORD"]] == ["set", "set"]
    assert "xoxb-secret" not in repr(list(settings.describe()))
