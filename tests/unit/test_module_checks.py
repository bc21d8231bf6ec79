"""The arch and vermagic checks on built modules, with wrong-arch and wrong-kernel modules."""

import struct

import pytest

from lab.module import ModuleCheckError, check_module, elf_machine, expected_vermagic, modinfo

CONFIG = {"CONFIG_SMP": "y", "CONFIG_MODULE_UNLOAD": "y"}


def fake_ko(path, machine: int, vermagic: str, big_endian=False):
    e = ">" if big_endian else "<"
    head = b"\x7fELF" + bytes([2, 2 if big_endian else 1, 1]) + bytes(9)
    head += struct.pack(e + "HH", 1, machine)
    body = b"\0" * 40 + b"license=GPL\0name=thread_mod\0vermagic=" + vermagic.encode() + b"\0"
    path.write_bytes(head + body)
    return path


def test_matching_module_passes(tmp_path):
    ko = fake_ko(tmp_path / "m.ko", 0x9026, "6.1.192 SMP mod_unload ")
    assert check_module(ko, "alpha", "6.1.192", CONFIG) == {
        "machine": "Alpha", "vermagic": "6.1.192 SMP mod_unload "}
    assert modinfo(ko)["name"] == "thread_mod"


def test_wrong_arch_names_both(tmp_path):
    ko = fake_ko(tmp_path / "m.ko", 3, "6.1.192 SMP mod_unload ")
    with pytest.raises(ModuleCheckError, match="'Intel 80386'.*alpha needs 'Alpha'"):
        check_module(ko, "alpha", "6.1.192", CONFIG)


def test_wrong_kernel_names_both(tmp_path):
    ko = fake_ko(tmp_path / "m.ko", 3, "6.12.9 SMP mod_unload 686 ")
    with pytest.raises(ModuleCheckError, match="'6.12.9 SMP mod_unload 686 '.*'6.1.192 SMP mod_unload'"):
        check_module(ko, "i386", "6.1.192", CONFIG)


def test_up_module_on_smp_kernel_is_refused(tmp_path):
    ko = fake_ko(tmp_path / "m.ko", 3, "6.1.192 mod_unload 686 ")
    with pytest.raises(ModuleCheckError):
        check_module(ko, "i386", "6.1.192", CONFIG)


def test_release_prefix_is_not_enough(tmp_path):
    ko = fake_ko(tmp_path / "m.ko", 3, "6.1.1920 SMP mod_unload ")
    with pytest.raises(ModuleCheckError):
        check_module(ko, "i386", "6.1.192", CONFIG)


def test_not_elf(tmp_path):
    (tmp_path / "x.ko").write_bytes(b"#!/bin/sh\n")
    with pytest.raises(ModuleCheckError, match="not an ELF"):
        elf_machine(tmp_path / "x.ko")


def test_expected_vermagic():
    assert expected_vermagic("6.1.192", {"CONFIG_SMP": "y", "CONFIG_MODULE_UNLOAD": "y"}) == \
        "6.1.192 SMP mod_unload"
    assert expected_vermagic("2.6.32", {}) == "2.6.32"


def test_preemptible_kernel_needs_a_preempt_module(tmp_path):
    cfg = {**CONFIG, "CONFIG_PREEMPT_BUILD": "y"}
    good = fake_ko(tmp_path / "a.ko", 3, "6.1.192 SMP preempt mod_unload 686 ")
    assert check_module(good, "i386", "6.1.192", cfg)["machine"] == "Intel 80386"
    bad = fake_ko(tmp_path / "b.ko", 3, "6.1.192 SMP mod_unload 686 ")
    with pytest.raises(ModuleCheckError):
        check_module(bad, "i386", "6.1.192", cfg)
