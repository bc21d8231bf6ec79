import dataclasses
import shutil

from lab.build import build_targets
from lab.cache import Store
from lab.config import ARCHES
from lab.images import images_for, target_steps
from lab.images.kernel import parse_config
from lab.images.steps import plan
from lab.module import elf_machine
from lab.paths import cache_dir


def test_every_target_has_a_kernel_and_rootfs(lab, built):
    store = Store(cache_dir())
    for target in lab.targets.values():
        im = images_for(lab, target, store)
        assert im.kernel.is_file() and im.initramfs.is_file()
        assert im.host_key.startswith("ssh-ed25519 ")
        assert im.kernel_release.startswith("6.1.")
        if target.arch == "alpha":
            assert elf_machine(im.kernel) == ARCHES["alpha"].elf_machine


def test_targets_of_one_arch_share_one_kernel(lab, built):
    keys = {t.arch: set() for t in lab.targets.values()}
    for t in lab.targets.values():
        keys[t.arch].add(target_steps(lab, t)[0].key)
    assert all(len(k) == 1 for k in keys.values())


def test_second_build_does_no_work(lab, built):
    again = build_targets(lab, list(lab.targets.values()))
    assert again.built == []
    assert all(s["status"] == "cached" for s in again.as_json()["steps"])


def test_kernel_configs_carry_the_fragments(lab, built):
    store = Store(cache_dir())
    alpha = parse_config((images_for(lab, lab.target("alpha-es40"), store).kernel_build
                          / ".config").read_text())
    assert alpha["CONFIG_SMP"] == "y" and alpha["CONFIG_NR_CPUS"] == "4"
    assert alpha.get("CONFIG_COMPACTION", "n") == "n"
    assert alpha["CONFIG_MODULE_UNLOAD"] == "y" and alpha["CONFIG_VIRTIO_NET"] == "y"
    i386 = parse_config((images_for(lab, lab.target("i386-up"), store).kernel_build
                         / ".config").read_text())
    assert i386["CONFIG_SMP"] == "y" and i386["CONFIG_SERIAL_8250_CONSOLE"] == "y"


def test_changing_one_fragment_line_rebuilds_only_that_kernel(lab, built, tmp_path, monkeypatch):
    import lab.images.kernel as kernel_mod
    target = lab.target("alpha-es40")
    profile = lab.profile_of(target)
    frag = tmp_path / "alpha.config"
    shutil.copy(kernel_mod.project_root() / profile.arches["alpha"].fragments[-1], frag)
    frag.write_text(frag.read_text() + "CONFIG_PRINTK_TIME=y\n# extra line\nCONFIG_HZ_250=y\n")
    arch = dataclasses.replace(profile.arches["alpha"],
                               fragments=(*profile.arches["alpha"].fragments[:-1], str(frag)))
    changed = dataclasses.replace(profile, arches={**profile.arches, "alpha": arch})
    changed_lab = dataclasses.replace(lab, profiles={**lab.profiles, profile.name: changed})
    p = plan(target_steps(changed_lab, target) + target_steps(changed_lab, lab.target("i386-up")),
             Store(cache_dir()))
    assert [(s.kind, s.name) for s in p.to_build] == [("kernel", "linux-6.1-alpha")]
