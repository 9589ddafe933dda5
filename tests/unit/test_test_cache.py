"""The test run's own cache (tests/conftest.py: test_cache): the integration tests' settings
and every task they start use it, never the user's cache (~/.cache/patchcheck), unless
PATCHCHECK_TEST_CACHE names one to reuse on purpose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from patchcheck.config import settings as config_mod

from ..conftest import CACHE_VARIABLE, TEST_CACHE, USER_CACHES
from ..integration.conftest import PROJECT, project_config, task_env

SETTINGS_CACHE_DIR = (
    "from patchcheck.config import settings as s\n"
    "from tests.integration.conftest import project_config\n"
    "print(s.load(project_config()).cache_dir)\n")


def _inside(path: Path, base: Path) -> bool:
    return path == base or base in path.parents


def test_the_run_has_a_cache_of_its_own_or_the_one_named_on_purpose(test_cache: Path) -> None:
    if os.environ.get(TEST_CACHE):
        assert test_cache == Path(os.environ[TEST_CACHE]).expanduser().absolute()
    else:
        assert not any(_inside(test_cache, user) or _inside(user, test_cache)
                       for user in USER_CACHES), (test_cache, USER_CACHES)
    assert test_cache.is_dir()
    assert os.environ[CACHE_VARIABLE] == str(test_cache)


def test_integration_settings_and_the_tasks_they_start_use_it(test_cache: Path) -> None:
    assert config_mod.load(project_config()).cache_dir == test_cache
    env = task_env({"INVOKE_PATCHCHECK_REPORTS_DIR": "/elsewhere"})
    assert env[CACHE_VARIABLE] == str(test_cache)
    # a task in its own process reads the same settings from that environment
    child = subprocess.run([sys.executable, "-c", SETTINGS_CACHE_DIR], cwd=PROJECT, env=env,
                           capture_output=True, text=True, timeout=60, check=True)
    assert Path(child.stdout.strip()) == test_cache
