"""The pytest plugin's options and parametrization, through pytester (no guest)."""

pytest_plugins = ["pytester"]


def test_tests_using_lab_fixtures_run_once_per_target(pytester):
    pytester.makepyfile("""
        def test_target(lab_target):
            assert lab_target in ("i386-up", "alpha-es40")

        def test_plain():
            pass
    """)
    res = pytester.runpytest("--lab-target", "i386-up", "--lab-target", "alpha-es40", "-v")
    res.assert_outcomes(passed=3)
    res.stdout.fnmatch_lines(["*test_target?i386-up? PASSED*", "*test_target?alpha-es40? PASSED*"])


def test_default_target_and_options_are_registered(pytester):
    pytester.makepyfile("""
        def test_target(lab_target, pytestconfig):
            assert lab_target == "alpha-es40"     # lab's one default target
            assert pytestconfig.getoption("lab_keep") is True
    """)
    pytester.runpytest("--lab-keep").assert_outcomes(passed=1)


def test_lab_module_needs_a_module_directory(pytester):
    pytester.makepyfile("""
        def test_module(lab_module):
            pass
    """)
    # no boot: lab_guest is replaced; the module-directory check comes first
    pytester.makeconftest("""
        import pytest
        @pytest.fixture(scope="session")
        def lab_guest():
            return object()
    """)
    res = pytester.runpytest()
    res.assert_outcomes(errors=1)
    res.stdout.fnmatch_lines(["*has no Kbuild or Makefile; pass --lab-module DIR*"])
