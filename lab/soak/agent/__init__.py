"""The in-guest soak agent: a C program cross-built per arch (cached like images)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ...cache import Artifact, Store, file_digest
from ...config import Lab, Target
from ...images.steps import BuildContext, Step, execute, plan
from ...images.toolchain import tool_version
from ...paths import cache_dir
from ...runner import run

SOURCE = Path(__file__).with_name("soak-agent.c")
REMOTE_PATH = "/lab/bin/soak-agent"


class AgentBuild(Step):
    kind = "agent"

    def __init__(self, arch: str, toolchain: str, compiler_package: str):
        self.arch, self.toolchain, self.compiler_package = arch, toolchain, compiler_package

    @property
    def name(self) -> str:
        return self.arch

    def inputs(self) -> Mapping[str, Any]:
        return {"source": file_digest(SOURCE),
                "compiler": tool_version(self.toolchain + "gcc", self.compiler_package)}

    def build(self, ctx: BuildContext, out: Path, deps: Mapping[str, Artifact]) -> Mapping[str, Any]:
        ctx.status(f"compiling soak agent for {self.arch}")
        # Dynamic: static glibc binaries crash on Alpha; the rootfs carries libc.
        run([self.toolchain + "gcc", "-O2", "-Wall", "-pthread", "-o", str(out / "soak-agent"), str(SOURCE)],
            log=ctx.log_for(self), what="soak agent build")
        return {}


def build_agent(lab: Lab, target: Target) -> Path:
    b = lab.profile_of(target).arches[target.arch]
    step = AgentBuild(target.arch, b.toolchain, b.compiler_package)
    store = Store(cache_dir())
    execute(plan([step], store), BuildContext(store, cache_dir() / "logs"))
    return step.artifact(store).path / "soak-agent"
