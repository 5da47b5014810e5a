"""What the local launcher's warm python preloads: the launching app's own imports (never torch for
an app that does not import it), or `hydra.launcher.preload`, plus what every job needs."""
import sys

from hydra_plugins.pab_campaign_launchers.launchers import JOB_MODULES, app_modules, preload_modules


def test_by_default_the_app_imports_outside_the_standard_library():
    modules = app_modules()
    assert "hydra" in modules and "pytest" in modules
    assert not {"os", "json", "__main__"} & set(modules)
    assert ("torch" in modules) == ("torch" in sys.modules)


def test_a_preload_list_replaces_the_app_imports_and_keeps_what_jobs_need():
    assert preload_modules(["numpy", "hydra"]) == [*JOB_MODULES, "numpy"]
    assert preload_modules([]) == list(JOB_MODULES)
