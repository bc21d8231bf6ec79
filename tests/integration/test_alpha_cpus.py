"""Each Alpha target runs the CPU its machine had, read back from the guest, and
QEMU's own PALcode still fails on EV6 the way alpha-ds20's target file says."""

from dataclasses import replace

import pytest

from lab.guest.qemu import BootVerdict
from lab.guest.lifecycle import up
from lab.soak.run import SoakOptions, run_soak


@pytest.mark.parametrize("name, model", [("alpha-ds20", "EV6"), ("alpha-pws500au", "EV56"),
                                         ("alpha-es40", "EV67")])
def test_alpha_target_runs_its_cpu_model(lab, built, running, name, model):
    target = lab.target(name)
    assert target.cpu == model.lower()
    with running(name) as (guest, conn):
        cpuinfo = conn.run("cat /proc/cpuinfo").stdout
        assert f"cpu model\t\t: {model}\n" in cpuinfo, cpuinfo
        assert f"cpus active\t\t: {target.smp}\n" in cpuinfo
        # what the host read back from the console at boot says the same
        assert guest.record.cpu_model == model
        assert ("-bios" in guest.record.command) == (target.palcode == "lab")


@pytest.mark.parametrize("name", ["alpha-ds20", "alpha-pws500au"])
def test_shipped_module_soaks_on_the_real_cpu_model(lab, built, tmp_path, name):
    res = run_soak(lab, lab.target(name), SoakOptions(out=tmp_path, accel="tcg", cycles=25))
    s = res.summary
    assert res.verdict == "pass", (s.reason, s.failures[:2], s.evidence[:60])
    assert s.cpu_model == lab.target(name).cpu.upper()
    assert s.guest.palcode == "lab" and s.guest.palcode_key


def test_qemu_own_palcode_still_dies_on_ev6_at_the_first_device_interrupt(lab, built, tmp_path):
    """If a future QEMU fixes its PALcode, this fails: then alpha-ds20 may drop `palcode: lab`."""
    log = tmp_path / "int.log"
    stock = replace(lab.target("alpha-ds20"), palcode="qemu", boot_retries=0,
                    qemu_args=("-d", "int", "-D", str(log)))
    with pytest.raises(BootVerdict) as e:
        guest, conn = up(lab, stock, accel="tcg", timeout=60)
        conn.close()
        guest.shutdown(hard_only=True)
    assert e.value.outcome == "qemu-exit" and e.value.exit_code == 0, str(e.value)
    assert "lab-guest" not in e.value.console_tail
    # -d int: the last exception is the illegal opcode at the PALcode's CTTZ
    opcdec = [line for line in log.read_text().splitlines() if "opcdec" in line.lower()]
    assert opcdec and "pc=fffffc00000032ec" in opcdec[-1], opcdec[-3:]
