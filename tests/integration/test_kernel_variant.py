"""A kernel variant from the command line (--config-fragment debug, --config
LINE): built once, booted, and what was asked for is in the kernel that runs."""

from lab.build import ensure_images
from lab.cli import main
from lab.guest.lifecycle import up
from lab.soak.run import SoakOptions, run_soak


def test_debug_variant_boots_with_its_config_and_soaks_clean(lab, built, debug_variant,
                                                            tmp_path, capsys):
    target = debug_variant("i386-up")
    guest, conn = up(lab, target, images=ensure_images(lab, target), accel="tcg")
    try:
        # the --config line: the release string; the fragment: lockdep and kmemleak
        assert conn.run(["uname", "-r"]).stdout.strip().endswith("-lab-test")
        assert conn.run(["test", "-e", "/proc/lockdep"], check=False).exit_code == 0
        conn.run("mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug")
        assert conn.run(["test", "-e", "/sys/kernel/debug/kmemleak"], check=False).exit_code == 0
        # lockdep checks the shipped module's locking while the soak runs on this guest
        res = run_soak(lab, target, SoakOptions(out=tmp_path, accel="tcg", cycles=20,
                                                dwell_every=10, dwell_s=2.5))
        assert res.verdict == "pass", (res.summary.reason, res.summary.failures[:2])
        assert res.summary.setup.kernel == "linux-6.1-i386+debug+cmdline"
        guest.console.poll()
        assert "possible circular locking" not in guest.console.tail(2000)
    finally:
        conn.close()
        guest.shutdown(soft_timeout=10)
    assert main(["images", "show", "i386-up", *debug_variant.cli]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert 'CONFIG_LOCALVERSION="-lab-test"' in lines
    assert {"CONFIG_PROVE_LOCKING=y", "CONFIG_DEBUG_KMEMLEAK=y", "CONFIG_DEBUG_OBJECTS=y"} <= set(lines)
