"""NeuralNetwork cases: control flow (`branch`, `loop`, `loopBreak`, `loopContinue`,
with `copy` updating loop variables), see gen_conformance_neuralnetwork.py. The
references run the same control flow in Python."""

from __future__ import annotations

import numpy as np

from coremltools.models.neural_network import NeuralNetworkBuilder

from gen_nn_common import f32, nn, rng


def sub(spec_field):
    """A builder adding layers to a nested network (branch or loop body)."""
    return NeuralNetworkBuilder(nn_spec=spec_field, disable_rank5_shape_mapping=True)


def branch_cases():
    g = rng("branch")
    x = f32(g, 2, 3)

    def both(b):
        br = b.add_branch("br", "c")
        sub(br.branch.ifBranch).add_elementwise("twice", ["x"], "y", "MULTIPLY", alpha=2.0)
        sub(br.branch.elseBranch).add_elementwise("plus", ["x"], "y", "ADD", alpha=1.0)

    for name, c in [("taken", 1.0), ("not_taken", 0.0), ("small_is_false", 1e-7)]:
        nn("branch", name, {"x": x, "c": np.array([c], np.float32)}, both,
           lambda x, c: x * 2.0 if abs(c[0]) > 1e-6 else x + 1.0, nd=True)

    def if_only(b):
        b.add_copy("init", "x", "y")
        br = b.add_branch("br", "c")
        sub(br.branch.ifBranch).add_activation("neg", "LINEAR", "x", "y", params=[-1.0, 0.0])

    for name, c in [("if_only_taken", -3.0), ("if_only_not_taken", 0.0)]:
        nn("branch", name, {"x": x, "c": np.array([c], np.float32)}, if_only,
           lambda x, c: -x if abs(c[0]) > 1e-6 else x, nd=True)


def loop_cases():
    g = rng("loop")
    x = f32(g, 3, lo=0.5, hi=1.5)

    def body_double_plus_x(bb):
        bb.add_elementwise("dbl", ["y"], "t", "MULTIPLY", alpha=2.0)
        bb.add_elementwise("px", ["t", "x"], "t2", "ADD")
        bb.add_copy("upd", "t2", "y")

    def for_count(b):
        b.add_copy("init", "x", "y")
        lp = b.add_loop("lp", max_iterations=4)
        body_double_plus_x(sub(lp.loop.bodyNetwork))

    def ref_for(x, n=4):
        y = x.copy()
        for _ in range(n):
            y = 2 * y + x
        return y

    nn("loop", "for_count", {"x": x}, for_count, ref_for, nd=True, tol="math")

    def for_input(b):
        b.add_copy("init", "x", "y")
        lp = b.add_loop("lp", input_name="n")
        body_double_plus_x(sub(lp.loop.bodyNetwork))

    nn("loop", "for_count_input", {"x": x, "n": np.array([3.0], np.float32)}, for_input,
       lambda x, n: ref_for(x, int(n[0])), nd=True, tol="math")

    def while_cond(b):
        b.add_copy("init", "x", "y")
        lp = b.add_loop("lp", condition="go")
        cond = sub(lp.loop.conditionNetwork)
        cond.add_reduce_sum("s", "y", "total", reduce_all=True, keepdims=False)
        cond.add_less_than("lt", ["total"], "go", alpha=100.0)
        bb = sub(lp.loop.bodyNetwork)
        bb.add_elementwise("tri", ["y"], "t", "MULTIPLY", alpha=3.0)
        bb.add_copy("upd", "t", "y")

    def ref_while(x):
        y = x.copy()
        while y.sum() < 100:
            y = 3 * y
        return y

    nn("loop", "while_condition", {"x": x}, while_cond, ref_while, nd=True, tol="math")

    def both(b):
        b.add_copy("init", "x", "y")
        lp = b.add_loop("lp", condition="go", max_iterations=2)
        cond = sub(lp.loop.conditionNetwork)
        cond.add_reduce_sum("s", "y", "total", reduce_all=True, keepdims=False)
        cond.add_less_than("lt", ["total"], "go", alpha=100.0)
        bb = sub(lp.loop.bodyNetwork)
        bb.add_elementwise("tri", ["y"], "t", "MULTIPLY", alpha=3.0)
        bb.add_copy("upd", "t", "y")

    def ref_both(x):
        y, i = x.copy(), 0
        while y.sum() < 100 and i < 2:
            y, i = 3 * y, i + 1
        return y

    nn("loop", "condition_and_count", {"x": x}, both, ref_both, nd=True, tol="math")

    def with_break(b):
        b.add_copy("init", "x", "y")
        lp = b.add_loop("lp", max_iterations=20)
        bb = sub(lp.loop.bodyNetwork)
        bb.add_elementwise("dbl", ["y"], "t", "MULTIPLY", alpha=2.0)
        bb.add_copy("upd", "t", "y")
        bb.add_reduce_max("m", "y", "mx", reduce_all=True, keepdims=False)
        bb.add_greater_than("gt", ["mx"], "stop", alpha=20.0)
        br = bb.add_branch("br", "stop")
        sub(br.branch.ifBranch).add_loop_break("brk")
        bb.add_elementwise("inc", ["y"], "t3", "ADD", alpha=0.5)
        bb.add_copy("upd2", "t3", "y")

    def ref_break(x):
        y = x.copy()
        for _ in range(20):
            y = 2 * y
            if y.max() > 20:
                break
            y = y + 0.5
        return y

    nn("loopBreak", "in_branch", {"x": x}, with_break, ref_break, nd=True, tol="math")

    def with_continue(b):
        b.add_copy("init_s", "z", "s")
        b.add_copy("init_i", "z", "i")
        lp = b.add_loop("lp", max_iterations=6)
        bb = sub(lp.loop.bodyNetwork)
        bb.add_elementwise("inc", ["i"], "i2", "ADD", alpha=1.0)
        bb.add_copy("upd_i", "i2", "i")
        bb.add_load_constant_nd("two", "two", np.array([2.0], np.float32), [1])
        bb.add_mod_broadcastable("mod", ["i", "two"], "r")
        bb.add_equal("even", ["r"], "skip", alpha=0.0)
        br = bb.add_branch("br", "skip")
        sub(br.branch.ifBranch).add_loop_continue("cont")
        bb.add_elementwise("acc", ["s", "i"], "s2", "ADD")
        bb.add_copy("upd_s", "s2", "s")
        b.add_copy("out", "s", "y")

    def ref_continue(z):
        s, i = z.copy(), z.copy()
        for _ in range(6):
            i = i + 1
            if i[0] % 2 == 0:
                continue
            s = s + i
        return s

    nn("loopContinue", "skip_even", {"z": np.zeros(1, np.float32)}, with_continue, ref_continue, nd=True)


def cases():
    branch_cases()
    loop_cases()
