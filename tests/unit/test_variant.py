"""Kernel variants from the command line: fragment resolution, the generated
fragment for --config lines, names and cache keys (no kernel is built)."""

from dataclasses import replace
from pathlib import Path

import pytest

from lab.cli import main
from lab.config import load_lab
from lab.errors import LabError
from lab.images import kernel_step
from lab.images.variant import fragment_files, lines_fragment, named_fragments, variant


@pytest.fixture
def lab(lab_dirs):
    return load_lab()


def test_shipped_debug_fragment_adds_the_arch_part_where_there_is_one():
    assert "debug" in named_fragments()
    i386 = fragment_files("debug", "i386")
    assert [Path(p).name for p in i386] == ["debug.config", "debug.i386.config"]
    assert [Path(p).name for p in fragment_files("debug", "alpha")] == ["debug.config"]


def test_unknown_fragment_names_the_shipped_ones():
    with pytest.raises(LabError, match="shipped: debug"):
        fragment_files("nosuch", "i386")
    with pytest.raises(LabError, match="no such file"):
        fragment_files("./nosuch.config", "i386")


def test_a_fragment_file_is_taken_by_its_absolute_path(tmp_path, monkeypatch):
    f = tmp_path / "mine.config"
    f.write_text("CONFIG_PRINTK_TIME=y\n")
    monkeypatch.chdir(tmp_path)
    assert fragment_files("mine.config", "i386") == [str(f)]


def test_config_lines_become_one_fragment_named_by_content(lab_dirs):
    a = lines_fragment(["CONFIG_DEBUG_LIST=y", "CONFIG_FOO=n", 'CONFIG_LOCALVERSION="-x"'])
    assert Path(a).read_text() == ('CONFIG_DEBUG_LIST=y\n# CONFIG_FOO is not set\n'
                                   'CONFIG_LOCALVERSION="-x"\n')
    assert lines_fragment(["CONFIG_DEBUG_LIST=y", "CONFIG_FOO=n", 'CONFIG_LOCALVERSION="-x"']) == a
    assert lines_fragment(["CONFIG_DEBUG_LIST=n"]) != a


@pytest.mark.parametrize("bad", ["DEBUG_LIST=y", "CONFIG_X", "CONFIG_X=maybe", "CONFIG_X=y; rm"])
def test_bad_config_lines_are_refused(lab_dirs, bad):
    with pytest.raises(LabError, match="expected CONFIG_NAME=VALUE"):
        lines_fragment([bad])


def test_variant_has_its_own_name_and_key_and_leaves_the_target_alone(lab):
    base = lab.target("i386-up")
    v = variant(lab, base, None, ["CONFIG_DEBUG_LIST=y"], ["debug"])
    assert base.config == ()
    k0, k1 = kernel_step(lab, base), kernel_step(lab, v)
    assert k1.name == "linux-6.1-i386+debug+cmdline" and k0.name == "linux-6.1-i386"
    assert k1.key != k0.key
    # the profile's fragments first, then the variant's, in the order given
    names = [Path(f).name for f in k1.spec.fragments]
    assert names[:2] == ["common.config", "i386.config"]
    assert names[2:4] == ["debug.config", "debug.i386.config"] and names[4].endswith(".config")
    # another line, another kernel; the same options, the same kernel
    assert kernel_step(lab, variant(lab, base, None, ["CONFIG_DEBUG_LIST=n"], ["debug"])).key != k1.key
    assert kernel_step(lab, variant(lab, base, None, ["CONFIG_DEBUG_LIST=y"], ["debug"])).key == k1.key
    # no options: the target's own kernel
    assert variant(lab, base) is base


def test_variant_of_another_profile_that_must_build_for_the_arch(lab):
    i386_only = replace(lab.profiles["linux-6.1"], name="linux-6.1-x86only",
                        arches={"i386": lab.profiles["linux-6.1"].arches["i386"]})
    lab = replace(lab, profiles={**lab.profiles, "linux-6.1-x86only": i386_only})
    v = variant(lab, lab.target("i386-up"), "linux-6.1-x86only", fragments=["debug"])
    assert kernel_step(lab, v).name == "linux-6.1-x86only-i386+debug"
    with pytest.raises(LabError, match="does not build for alpha"):
        variant(lab, lab.target("alpha-es40"), "linux-6.1-x86only")
    with pytest.raises(LabError, match="not a kernel profile"):
        variant(lab, lab.target("alpha-es40"), "linux-9")


def test_images_show_says_how_to_build_a_missing_variant(lab, capsys):
    assert main(["images", "show", "i386-up", "--config", "CONFIG_DEBUG_LIST=y"]) == 2
    err = capsys.readouterr().err
    assert "linux-6.1-i386+cmdline" in err and "is not built" in err
    assert "lab images build i386-up --config CONFIG_DEBUG_LIST=y" in err
