"""Guests: one QEMU process each (qemu.py), brought up and down (lifecycle.py),
recorded while they run (state.py), watched through their serial console
(console.py), on the accelerator that works (accel.py), and restored from
post-boot snapshots (snapshot.py)."""
