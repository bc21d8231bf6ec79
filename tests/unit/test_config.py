from pathlib import Path

import pytest

from lab.config import load_lab, load_profile, load_target
from lab.errors import ConfigError, LabError

GOOD = """\
arch: alpha
machine: clipper
cpu: ev67
smp: 4
memory: 512
kernel: linux-6.1
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return p


def test_shipped_configs_load():
    lab = load_lab()
    assert set(lab.targets) == {"i386-up", "i386-smp", "alpha-pws500au", "alpha-ds20", "alpha-es40"}
    assert lab.default_target in lab.targets
    es40 = lab.target("alpha-es40")
    assert (es40.arch, es40.machine, es40.smp) == ("alpha", "clipper", 4)
    assert lab.target("i386-up").smp == 1
    assert lab.profile_of(es40).arches["alpha"].toolchain == "alpha-linux-gnu-"


def test_good_target(tmp_path):
    t = load_target(write(tmp_path, "es40", GOOD))
    assert t.name == "es40" and t.cpu == "ev67" and t.timeouts.boot > 0


@pytest.mark.parametrize("text, key, words", [
    (GOOD.replace("smp: 4", "smp: 8"), "smp", ["1..4"]),
    (GOOD.replace("smp: 4", "smp: 0"), "smp", ["1..4"]),
    (GOOD.replace("smp: 4", "smp: four"), "smp", ["expected int", "four"]),
    (GOOD.replace("smp: 4", "smp: yes"), "smp", ["expected int"]),
    (GOOD.replace("arch: alpha", "arch: sparc"), "arch", ["i386", "alpha"]),
    (GOOD.replace("cpu: ev67", "cpu: ev7"), "cpu", ["ev56", "ev67", "ev68"]),
    (GOOD.replace("machine: clipper", "machine: pc"), "machine", ["clipper"]),
    (GOOD + "colour: blue\n", "colour", ["unknown key", "memory"]),
    (GOOD.replace("kernel: linux-6.1\n", ""), "kernel", ["missing"]),
    (GOOD.replace("memory: 512", "memory: -1"), "memory", ["out of range"]),
    (GOOD + "qemu_args: [1, 2]\n", "qemu_args[0]", ["expected str"]),
    (GOOD + "timeouts: {boot: 0}\n", "timeouts.boot", ["out of range"]),
    (GOOD + "timeouts: {bot: 3}\n", "timeouts.bot", ["unknown key", "boot"]),
    (GOOD + "boot_retries: 9\n", "boot_retries", ["0..5"]),
    (GOOD + "tcg_thread: two\n", "tcg_thread", ["multi", "single"]),
    ("arch: [alpha\n", "(syntax)", []),
    ("- a list\n", "(top level)", ["mapping"]),
])
def test_bad_target_names_file_key_and_choices(tmp_path, text, key, words):
    p = write(tmp_path, "bad", text)
    with pytest.raises(ConfigError) as e:
        load_target(p)
    msg = str(e.value)
    assert e.value.key == key
    assert msg.startswith(f"{p}: {key}: ")
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_a_target_may_run_its_vcpus_on_one_tcg_thread(tmp_path, monkeypatch):
    t = load_target(write(tmp_path, "es40", GOOD + "tcg_thread: single\n"))
    assert t.threading("tcg") == "single" and t.accel_arg("tcg") == "tcg,thread=single"
    assert t.host_threads() == 1 and t.threading("kvm") == "kvm"
    monkeypatch.setenv("LAB_TCG_THREAD", "multi")   # the environment overrides every target
    assert load_target(write(tmp_path, "es40", GOOD + "tcg_thread: single\n")).host_threads() == 4


def test_target_name_must_match_file(tmp_path):
    with pytest.raises(ConfigError, match="must match the file name"):
        load_target(write(tmp_path, "es40", GOOD + "name: ds20\n"))


PROFILE = """\
version: "6.1"
source: {kind: debian-package, package: linux-source-6.1}
arches:
  alpha: {toolchain: alpha-linux-gnu-, compiler_package: gcc-alpha-linux-gnu, image: vmlinux}
"""


def test_profile_and_the_2_4_keys_it_refuses(tmp_path):
    assert load_profile(write(tmp_path, "k", PROFILE)).arches["alpha"].image == "vmlinux"
    for extra, key in (("rootfs_format: initrd\n", "rootfs_format"),
                       ("module_format: o\n", "module_format")):
        with pytest.raises(ConfigError, match="is not built") as e:
            load_profile(write(tmp_path, "k24", PROFILE + extra))
        assert e.value.key == key


@pytest.mark.parametrize("text, key", [
    (PROFILE.replace("debian-package, package: linux-source-6.1", "git"), "source.kind"),
    (PROFILE.replace(", package: linux-source-6.1", ""), "source.package"),
    (PROFILE.replace("alpha: {", "mips: {"), "arches.mips"),
    (PROFILE.replace("image: vmlinux", "img: vmlinux"), "arches.alpha.img"),
    (PROFILE + "rootfs: squashfs\n", "rootfs"),
])
def test_bad_profile(tmp_path, text, key):
    with pytest.raises(ConfigError) as e:
        load_profile(write(tmp_path, "k", text))
    assert e.value.key == key


def test_target_with_unknown_profile(tmp_path):
    (tmp_path / "configs/kernels").mkdir(parents=True)
    (tmp_path / "configs/targets").mkdir(parents=True)
    (tmp_path / "configs/kernels/linux-6.1.yaml").write_text(PROFILE)
    (tmp_path / "configs/targets/t.yaml").write_text(GOOD.replace("linux-6.1", "linux-9"))
    with pytest.raises(ConfigError, match="'linux-9' is not a kernel profile; choose one of: linux-6.1"):
        load_lab(tmp_path)


def test_unknown_target_lists_targets():
    with pytest.raises(LabError, match="alpha-ds20, alpha-es40, alpha-pws500au, i386-smp, i386-up"):
        load_lab().target("alpha-es45")


def test_timeout_factor_scales_every_timeout_not_the_checks(monkeypatch):
    from lab.config import load_lab
    from lab.soak.thresholds import load_thresholds
    monkeypatch.setenv("LAB_TIMEOUT_FACTOR", "1")
    base = load_lab().target("alpha-es40").timeouts
    t0 = load_thresholds("alpha")
    monkeypatch.setenv("LAB_TIMEOUT_FACTOR", "2.5")
    slow = load_lab().target("alpha-es40").timeouts
    assert slow.boot == base.boot * 2.5 and slow.silence == base.silence * 2.5
    assert slow.ssh_command == base.ssh_command * 2.5 and slow.shutdown == base.shutdown * 2.5
    t = load_thresholds("alpha")
    assert t.cycle_deadline_s == t0.cycle_deadline_s * 2.5 and t.hold_limit_ms == t0.hold_limit_ms * 2.5
    assert t.max_unload_ms == t0.max_unload_ms and t.max_load_ms == t0.max_load_ms


def test_an_smp_guest_on_one_tcg_thread_is_allowed_the_round_robin_slice_of_jitter():
    from lab.soak.thresholds import TCG_ROUND_ROBIN_MS, load_thresholds
    alone = load_thresholds("alpha", factor=1)
    shared = load_thresholds("alpha", factor=1, one_thread_smp=True)
    assert shared.max_jitter_ms == alone.max_jitter_ms + TCG_ROUND_ROBIN_MS
    assert shared.max_load_ms == alone.max_load_ms and shared.period_tolerance_pct == alone.period_tolerance_pct
    # what the user sets on the command line is what holds
    given = load_thresholds("alpha", factor=1, one_thread_smp=True, overrides={"max_jitter_ms": 50})
    assert given.max_jitter_ms == 50


def test_bad_timeout_factor_is_one_line(monkeypatch, lab_dirs, capsys):
    from lab.cli import main
    monkeypatch.setenv("LAB_TIMEOUT_FACTOR", "fast")
    assert main(["up", "i386-up"]) == 2
    assert "LAB_TIMEOUT_FACTOR='fast'" in capsys.readouterr().err
