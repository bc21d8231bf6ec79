"""Cache keys and the build planner, with fake steps (no compiler involved)."""

from lab.cache import Store, hash_inputs
from lab.images.steps import BuildContext, Step, execute, plan


class FakeStep(Step):
    def __init__(self, kind, name, inputs, deps=(), log=None):
        self.kind, self._name, self._inputs, self._deps = kind, name, inputs, list(deps)
        self.log = log if log is not None else []

    @property
    def name(self):
        return self._name

    def deps(self):
        return self._deps

    def inputs(self):
        return self._inputs

    def build(self, ctx, out, deps):
        self.log.append(self.name)
        (out / "artifact").write_text(repr(self._inputs))
        return {"from": sorted(deps)}


def graph(log, kernel_config="CONFIG_SMP=y", init="v1"):
    """Two targets of one arch: they share the source, kernel and rootfs."""
    src = FakeStep("kernel-source", "linux", {"version": "6.1.192"}, log=log)
    targets = []
    for _target in ("alpha-ds20", "alpha-es40"):
        kernel = FakeStep("kernel", "linux-alpha", {"config": kernel_config}, [src], log)
        busybox = FakeStep("busybox", "alpha", {"config": "default"}, log=log)
        rootfs = FakeStep("rootfs", "alpha", {"init": init}, [busybox], log)
        targets += [kernel, rootfs]
    return targets


def test_hash_is_stable_and_order_free():
    assert hash_inputs({"a": 1, "b": [1, 2]}) == hash_inputs({"b": [1, 2], "a": 1})
    assert hash_inputs({"a": 1}) != hash_inputs({"a": 2})
    assert len(hash_inputs({})) == 16


def test_dependency_key_changes_dependents():
    a1 = FakeStep("kernel-source", "linux", {"version": "6.1.191"})
    a2 = FakeStep("kernel-source", "linux", {"version": "6.1.192"})
    k1 = FakeStep("kernel", "linux-alpha", {"config": "x"}, [a1])
    k2 = FakeStep("kernel", "linux-alpha", {"config": "x"}, [a2])
    assert k1.key != k2.key


def test_shared_steps_planned_once_in_dependency_order(tmp_path):
    p = plan(graph([]), Store(tmp_path))
    kinds = [s.step.kind for s in p.steps]
    assert kinds == ["kernel-source", "kernel", "busybox", "rootfs"]
    assert all(not s.cached for s in p.steps)


def run(tmp_path, steps):
    store = Store(tmp_path / "cache")
    ctx = BuildContext(store, tmp_path / "logs")
    return execute(plan(steps, store), ctx)


def test_second_run_builds_nothing(tmp_path):
    log = []
    run(tmp_path, graph(log))
    assert log == ["linux", "linux-alpha", "alpha", "alpha"]
    log.clear()
    assert run(tmp_path, graph(log)) == [] and log == []


def test_changing_a_config_line_rebuilds_only_its_dependents(tmp_path):
    run(tmp_path, graph([]))
    log = []
    built = run(tmp_path, graph(log, kernel_config="CONFIG_SMP=n"))
    assert [(s.kind, s.name) for s, _ in built] == [("kernel", "linux-alpha")]
    log = []
    built = run(tmp_path, graph(log, init="v2"))
    assert [(s.kind, s.name) for s, _ in built] == [("rootfs", "alpha")]


def test_failed_build_is_not_published(tmp_path):
    class Broken(FakeStep):
        def build(self, ctx, out, deps):
            (out / "half").write_text("x")
            raise RuntimeError("compiler died")

    store = Store(tmp_path)
    step = Broken("kernel", "k", {"x": 1})
    try:
        execute(plan([step], store), BuildContext(store, tmp_path / "logs"))
    except RuntimeError:
        pass
    assert not step.artifact(store).exists()
    assert plan([step], store).to_build == [step]


def test_manifest_records_inputs_and_deps(tmp_path):
    store = Store(tmp_path)
    steps = graph([])
    execute(plan(steps, store), BuildContext(store, tmp_path / "logs"))
    m = steps[0].artifact(store).manifest()
    assert m["inputs"]["inputs"] == {"config": "CONFIG_SMP=y"}
    assert set(m["inputs"]["deps"]) == {"kernel-source"}
    assert [a.kind for a in store.all()] == ["busybox", "kernel", "kernel-source", "rootfs"]


def test_rootfs_recipe_is_parsed_once_per_version_of_the_file(tmp_path, monkeypatch):
    from lab.images import rootfs
    (tmp_path / "images" / "rootfs").mkdir(parents=True)
    recipe = tmp_path / "images" / "rootfs" / "rootfs.yaml"
    recipe.write_text('sources:\n  busybox: "1"\n')
    monkeypatch.setattr(rootfs, "project_root", lambda: tmp_path)
    first = rootfs.recipe()
    assert rootfs.recipe() is first
    # An edit shows at once: a step key must never see an old recipe.
    recipe.write_text('sources:\n  busybox: "1.1"\n')
    assert rootfs.recipe()["sources"]["busybox"] == "1.1"
