"""NeuralNetwork cases: the ND tensor layers of spec 4+ (shape manipulation, slicing,
gather/scatter, sorting, fills, random) (see gen_conformance_neuralnetwork.py)."""

from __future__ import annotations

import numpy as np

from gen_nn_common import f32, nn, rng


def ints(g, *shape, lo=0, hi=5):
    return g.integers(lo, hi, shape).astype(np.float32)


def shape_cases():
    g = rng("nd-shape")
    x = f32(g, 2, 3, 4)
    nn("transpose", "basic", {"x": x}, lambda b: b.add_transpose("t", [2, 0, 1], "x", "y"),
       lambda x: x.transpose(2, 0, 1), nd=True, tol="exact")
    x1 = f32(g, 1, 3, 1, 4)
    nn("squeeze", "axes", {"x": x1}, lambda b: b.add_squeeze("s", "x", "y", axes=[0, -2]),
       lambda x: x.reshape(3, 4), nd=True, tol="exact")
    nn("squeeze", "all", {"x": x1}, lambda b: b.add_squeeze("s", "x", "y", squeeze_all=True),
       lambda x: x.reshape(3, 4), nd=True, tol="exact")
    nn("expandDims", "axes", {"x": f32(g, 3, 4)}, lambda b: b.add_expand_dims("e", "x", "y", axes=[0, -1]),
       lambda x: x.reshape(1, 3, 4, 1), nd=True, tol="exact")
    for axis in [0, 1, -1]:
        nn("flattenTo2D", f"axis_{axis}".replace("-", "m"), {"x": x},
           lambda b, axis=axis: b.add_flatten_to_2d("f", "x", "y", axis=axis),
           lambda x, axis=axis: x.reshape(int(np.prod(x.shape[:axis % x.ndim])), -1),
           nd=True, tol="exact")
    nn("reshapeStatic", "infer", {"x": x}, lambda b: b.add_reshape_static("r", "x", "y", [4, -1]),
       lambda x: x.reshape(4, -1), nd=True, tol="exact")
    nn("reshapeLike", "basic", {"x": x, "r": f32(g, 6, 2, 2)}, lambda b: b.add_reshape_like("r", ["x", "r"], "y"),
       lambda x, r: x.reshape(6, 2, 2), nd=True, tol="exact")
    nn("reshapeDynamic", "basic", {"x": x, "s": np.array([3, 8], np.float32)},
       lambda b: b.add_reshape_dynamic("r", ["x", "s"], "y"), lambda x, s: x.reshape(3, 8), nd=True, tol="exact")
    nn("rankPreservingReshape", "zero_and_infer", {"x": x},
       lambda b: b.add_rank_preserving_reshape("r", "x", "y", [0, -1, 2]), lambda x: x.reshape(2, 6, 2), nd=True,
       tol="exact")
    a, c = f32(g, 2, 3), f32(g, 2, 5)
    nn("concatND", "axis1", {"a": a, "c": c}, lambda b: b.add_concat_nd("c", ["a", "c"], "y", axis=1),
       lambda a, c: np.concatenate([a, c], axis=1), nd=True, tol="exact")
    nn("concatND", "interleave", {"a": a, "c": a + 1},
       lambda b: b.add_concat_nd("c", ["a", "c"], "y", axis=0, interleave=True),
       lambda a, c: np.stack([a, c], axis=1).reshape(4, 3), nd=True, tol="exact")
    xs = f32(g, 5, 3, 4)
    nn("splitND", "sizes", {"x": xs}, lambda b: b.add_split_nd("s", "x", ["y0", "y1"], axis=0, split_sizes=[3, 2]),
       lambda x: {"y0": x[:3], "y1": x[3:]}, nd=True, tol="exact")
    nn("splitND", "even", {"x": xs},
       lambda b: b.add_split_nd("s", "x", ["y0", "y1"], axis=-1, num_splits=2),
       lambda x: {"y0": x[..., :2], "y1": x[..., 2:]}, nd=True, tol="exact")
    xs5 = f32(g, 5, 5, 5)
    nn("sliceStatic", "masks_strides", {"x": xs5},
       lambda b: b.add_slice_static("s", "x", "y", [1, 2, 3], [3, -3, 2], [2, 2, 2], [True, False, True],
                                    [False, True, True]), lambda x: x[:3:2, 2::2, ::2], nd=True, tol="exact")
    nn("sliceStatic", "squeeze_negative_stride", {"x": xs5},
       lambda b: b.add_slice_static("s", "x", "y", [4, 2, 0], [0, 3, 5], [-1, 1, 2], [False, False, False],
                                    [False, False, False], squeeze_masks=[False, True, False]),
       lambda x: x[4:0:-1, 2, 0:5:2], nd=True, tol="exact")
    nn("sliceDynamic", "begin_input", {"x": xs5, "begin": np.array([1, 0, 2], np.float32)},
       lambda b: b.add_slice_dynamic("s", ["x", "begin"], "y", end_ids=[4, 5, 5], strides=[1, 2, 1],
                                     begin_masks=[False, False, False], end_masks=[False, True, False]),
       lambda x, begin: x[1:4, 0::2, 2:5], nd=True, tol="exact")
    nn("sliceDynamic", "begin_end_inputs", {"x": xs5, "begin": np.array([0, 1, 1], np.float32),
                                            "end": np.array([2, 4, -1], np.float32)},
       lambda b: b.add_slice_dynamic("s", ["x", "begin", "end"], "y", strides=[1, 1, 1],
                                     begin_masks=[False] * 3, end_masks=[False] * 3),
       lambda x, begin, end: x[0:2, 1:4, 1:-1], nd=True, tol="exact")
    nn("sliceBySize", "axis1", {"x": xs5, "begin": np.array([2], np.float32)},
       lambda b: b.add_slice_by_size("s", ["x", "begin"], "y", axis=1, size=2), lambda x, begin: x[:, 2:4],
       nd=True, tol="exact")
    nn("tile", "static", {"x": a}, lambda b: b.add_tile("t", "x", "y", reps=[2, 3]), lambda x: np.tile(x, (2, 3)),
       nd=True, tol="exact")
    nn("tile", "reps_input", {"x": a, "r": np.array([3, 1], np.float32)},
       lambda b: b.add_tile("t", ["x", "r"], "y"), lambda x, r: np.tile(x, (3, 1)), nd=True, tol="exact")
    nn("stack", "axis1", {"a": a, "c": a * 2}, lambda b: b.add_stack("s", ["a", "c"], "y", axis=1),
       lambda a, c: np.stack([a, c], axis=1), nd=True, tol="exact")
    nn("getShape", "basic", {"x": x}, lambda b: b.add_get_shape("s", "x", "y"),
       lambda x: np.array(x.shape, np.float64), nd=True, tol="exact")
    nn("fillLike", "basic", {"x": x}, lambda b: b.add_fill_like("f", "x", "y", value=2.5),
       lambda x: np.full(x.shape, 2.5), nd=True, tol="exact")
    nn("fillStatic", "basic", {"x": a},
       lambda b: (b.add_fill_static("f", "k", [2, 3], value=-1.5), b.add_add_broadcastable("a", ["x", "k"], "y")),
       lambda x: x - 1.5, nd=True, tol="exact")
    nn("fillDynamic", "basic", {"s": np.array([2, 4], np.float32)},
       lambda b: b.add_fill_dynamic("f", "s", "y", value=3.0), lambda s: np.full((2, 4), 3.0), nd=True,
       tol="exact")
    nn("broadcastToLike", "basic", {"x": f32(g, 3, 1), "r": f32(g, 2, 3, 4)},
       lambda b: b.add_broadcast_to_like("bc", ["x", "r"], "y"), lambda x, r: np.broadcast_to(x, r.shape),
       nd=True, tol="exact")
    nn("broadcastToStatic", "basic", {"x": f32(g, 3, 1)},
       lambda b: b.add_broadcast_to_static("bc", "x", "y", [2, 3, 4]), lambda x: np.broadcast_to(x, (2, 3, 4)),
       nd=True, tol="exact")
    nn("broadcastToDynamic", "basic", {"x": f32(g, 3, 1), "s": np.array([2, 3, 4], np.float32)},
       lambda b: b.add_broadcast_to_dynamic("bc", ["x", "s"], "y"), lambda x, s: np.broadcast_to(x, (2, 3, 4)),
       nd=True, tol="exact")
    nn("rangeStatic", "basic", {"x": f32(g, 5)},
       lambda b: (b.add_range_static("r", "k", end=7.0, start=2.0, step=1.0),
                  b.add_add_broadcastable("a", ["x", "k"], "y")),
       lambda x: x + np.arange(2.0, 7.0), nd=True, tol="exact")
    nn("rangeDynamic", "end_input", {"e": np.array([6.0], np.float32)},
       lambda b: b.add_range_dynamic("r", ["e"], "y", start=1.0, step=2.0), lambda e: np.arange(1.0, 6.0, 2.0),
       nd=True, tol="exact")
    nn("rangeDynamic", "three_inputs", {"e": np.array([1.0], np.float32), "s": np.array([4.0], np.float32),
                                        "d": np.array([-0.5], np.float32)},
       lambda b: b.add_range_dynamic("r", ["e", "s", "d"], "y"), lambda e, s, d: np.arange(4.0, 1.0, -0.5),
       nd=True, tol="exact")
    k = f32(g, 2, 3)
    nn("loadConstantND", "basic", {"x": a},
       lambda b: (b.add_load_constant_nd("k", "k", k, [2, 3]), b.add_add_broadcastable("a", ["x", "k"], "y")),
       lambda x: x + k, nd=True)
    nn("reverse", "dims", {"x": x}, lambda b: b.add_reverse("r", "x", "y", reverse_dim=[True, False, True]),
       lambda x: x[::-1, :, ::-1], nd=True, tol="exact")
    lens = np.array([3, 1], np.float32)

    def rev_seq(x, lengths):
        y = x.copy()
        for i, n in enumerate(lengths.astype(int)):
            y[i, :n] = x[i, :n][::-1]
        return y

    nn("reverseSeq", "basic", {"x": f32(g, 2, 4, 3), "l": lens},
       lambda b: b.add_reverse_sequence("r", ["x", "l"], "y", batch_axis=0, seq_axis=1), rev_seq, nd=True,
       tol="exact")
    xw = f32(g, 2, 7, 3)
    nn("slidingWindows", "axis1", {"x": xw}, lambda b: b.add_sliding_windows("s", "x", "y", axis=1, window_size=3,
                                                                             step=2),
       lambda x: np.stack([x[:, i:i + 3] for i in range(0, 5, 2)], axis=1), nd=True, tol="exact")


def index_cases():
    g = rng("nd-index")
    data = f32(g, 4, 3, 5)
    idx = np.array([[2, 0], [3, -1]], np.float32)
    nn("gather", "axis0", {"d": data, "i": idx}, lambda b: b.add_gather("g", ["d", "i"], "y", axis=0),
       lambda d, i: np.take(d, i.astype(int), axis=0), nd=True, tol="exact")
    nn("gather", "axis_m1", {"d": data, "i": np.array([4, 1, 1], np.float32)},
       lambda b: b.add_gather("g", ["d", "i"], "y", axis=-1), lambda d, i: np.take(d, i.astype(int), axis=-1),
       nd=True, tol="exact")
    nd_idx = np.array([[0, 2], [3, 1], [1, 0]], np.float32)
    nn("gatherND", "basic", {"d": data, "i": nd_idx}, lambda b: b.add_gather_nd("g", ["d", "i"], "y"),
       lambda d, i: np.stack([d[int(a), int(c)] for a, c in i]), nd=True, tol="exact")
    ia = ints(g, 4, 2, 5, lo=0, hi=3)
    nn("gatherAlongAxis", "axis1", {"d": data, "i": ia},
       lambda b: b.add_gather_along_axis("g", ["d", "i"], "y", axis=1),
       lambda d, i: np.take_along_axis(d, i.astype(int), axis=1), nd=True, tol="exact")
    upd = f32(g, 2, 3, 5)
    for mode in ["UPDATE", "ADD", "SUB", "MUL", "DIV", "MAX", "MIN"]:
        def sc_ref(d, i, u, mode=mode):
            y = d.copy()
            for j, ix in enumerate(i.astype(int)):
                y[ix] = {"UPDATE": lambda a, v: v, "ADD": np.add, "SUB": np.subtract, "MUL": np.multiply,
                         "DIV": np.divide, "MAX": np.maximum, "MIN": np.minimum}[mode](y[ix], u[j])
            return y

        nn("scatter", mode.lower(), {"d": data, "i": np.array([3, 1], np.float32), "u": upd},
           lambda b, mode=mode: b.add_scatter("s", ["d", "i", "u"], "y", axis=0, mode=mode), sc_ref, nd=True,
           tol="math")

    def scnd_ref(d, i, u):
        y = d.copy()
        for j, (a, c) in enumerate(i.astype(int)):
            y[a, c] += u[j]
        return y

    nn("scatterND", "add", {"d": data, "i": nd_idx, "u": f32(g, 3, 5)},
       lambda b: b.add_scatter_nd("s", ["d", "i", "u"], "y", mode="ADD"), scnd_ref, nd=True, tol="math")
    ua = f32(g, 4, 2, 5)
    ia2 = np.stack([np.stack([g.permutation(3)[:2] for _ in range(5)], axis=1) for _ in range(4)]).astype(
        np.float32)

    def scaa_ref(d, i, u):
        y = d.copy()
        np.put_along_axis(y, i.astype(int), u, axis=1)
        return y

    nn("scatterAlongAxis", "update", {"d": data, "i": ia2, "u": ua},
       lambda b: b.add_scatter_along_axis("s", ["d", "i", "u"], "y", axis=1, mode="UPDATE"), scaa_ref, nd=True,
       tol="exact")
    xa = f32(g, 3, 4, 5)
    nn("argMax", "keep", {"x": xa}, lambda b: b.add_argmax("a", "x", "y", axis=1, keepdims=True),
       lambda x: np.argmax(x, axis=1)[:, None].astype(np.float64), nd=True, tol="exact")
    nn("argMin", "remove_dim", {"x": xa}, lambda b: b.add_argmin("a", "x", "y", axis=-1, keepdims=False),
       lambda x: np.argmin(x, axis=-1).astype(np.float64), nd=True, tol="exact")
    xt = f32(g, 3, 6)

    def topk_ref(x, k, bottom):
        order = np.argsort(x if bottom else -x, axis=1, kind="stable")[:, :k]
        return {"v": np.take_along_axis(x, order, axis=1), "i": order.astype(np.float64)}

    nn("topK", "top3", {"x": xt}, lambda b: b.add_topk("t", ["x"], ["v", "i"], k=3, axis=1),
       lambda x: topk_ref(x, 3, False), nd=True, tol="exact", outputs=["v", "i"])
    nn("topK", "bottom2", {"x": xt}, lambda b: b.add_topk("t", ["x"], ["v", "i"], k=2, axis=-1, use_bottom_k=True),
       lambda x: topk_ref(x, 2, True), nd=True, tol="exact", outputs=["v", "i"])
    nn("topK", "k_input", {"x": xt, "k": np.array([2.0], np.float32)},
       lambda b: b.add_topk("t", ["x", "k"], ["v", "i"], axis=1), lambda x, k: topk_ref(x, 2, False), nd=True,
       tol="exact", outputs=["v", "i"])
    nn("argSort", "descending", {"x": xt}, lambda b: b.add_argsort("a", "x", "y", axis=1, descending=True),
       lambda x: np.argsort(-x, axis=1, kind="stable").astype(np.float64), nd=True, tol="exact")
    nz = np.array([[1, 0, 2], [0, 0, 3]], np.float32)
    nn("whereNonZero", "basic", {"x": nz}, lambda b: b.add_where_nonzero("w", "x", "y"),
       lambda x: np.argwhere(x != 0).astype(np.float64), nd=True, tol="exact")
    oh = np.array([1, 3, 0], np.float32)
    nn("oneHot", "axis_last", {"x": oh},
       lambda b: b.add_one_hot("o", ["x"], "y", one_hot_vector_size=4, axis=-1, on_value=2.0, off_value=-1.0),
       lambda x: np.where(np.arange(4)[None] == x[:, None], 2.0, -1.0), nd=True, tol="exact")
    xc = f32(g, 2, 5)
    nn("cumSum", "basic", {"x": xc}, lambda b: b.add_cumsum("c", ["x"], "y", axis=1),
       lambda x: np.cumsum(x, axis=1), nd=True, tol="fp32")
    nn("cumSum", "exclusive_reverse", {"x": xc},
       lambda b: b.add_cumsum("c", ["x"], "y", axis=-1, reverse=True, exclusive=True),
       lambda x: np.cumsum(x[:, ::-1], axis=1)[:, ::-1] - x, nd=True, tol="fp32")
    m = f32(g, 2, 4, 5)
    r, c = np.arange(4)[:, None], np.arange(5)[None]
    nn("matrixBandPart", "basic", {"x": m}, lambda b: b.add_matrix_band_part("m", "x", "y", num_lower=1, num_upper=2),
       lambda x: x * ((r - c <= 1) & (c - r <= 2)), nd=True, tol="exact")
    for k in [0, 1, -1]:
        tag = f"k{k}".replace("-", "m")
        nn("lowerTriangular", tag, {"x": m}, lambda b, k=k: b.add_lower_triangular("l", "x", "y", k=k),
           lambda x, k=k: np.tril(x, k), nd=True, tol="exact")
        nn("upperTriangular", tag, {"x": m}, lambda b, k=k: b.add_upper_triangular("u", "x", "y", k=k),
           lambda x, k=k: np.triu(x, k), nd=True, tol="exact")


def nms_cases():
    # Boxes (center x, center y, width, height), one class score per box.
    boxes = np.array([[[0, 0, 2, 2], [0.1, 0.1, 2, 2], [5, 5, 1, 1], [5.2, 5, 1, 1], [9, 9, 2, 2]]], np.float32)
    scores = np.array([[[0.9], [0.8], [0.7], [0.95], [0.1]]], np.float32)

    def nms_ref(boxes, scores, iou=0.5, thresh=0.2, max_boxes=4):
        b, s = boxes[0], scores[0, :, 0]

        def iou_of(p, q):
            px0, py0, px1, py1 = p[0] - p[2] / 2, p[1] - p[3] / 2, p[0] + p[2] / 2, p[1] + p[3] / 2
            qx0, qy0, qx1, qy1 = q[0] - q[2] / 2, q[1] - q[3] / 2, q[0] + q[2] / 2, q[1] + q[3] / 2
            iw, ih = max(0, min(px1, qx1) - max(px0, qx0)), max(0, min(py1, qy1) - max(py0, qy0))
            inter = iw * ih
            return inter / (p[2] * p[3] + q[2] * q[3] - inter)

        keep = []
        for i in np.argsort(-s, kind="stable"):
            if s[i] < thresh:
                continue
            if all(iou_of(b[i], b[j]) <= iou for j in keep):
                keep.append(i)
        keep = keep[:max_boxes]
        ob = np.zeros((1, max_boxes, 4))
        os_ = np.zeros((1, max_boxes, 1))
        oi = -np.ones((1, max_boxes))
        for n, i in enumerate(keep):
            ob[0, n], os_[0, n], oi[0, n] = b[i], scores[0, i], i
        return {"ob": ob, "os": os_, "oi": oi, "on": np.array([len(keep)], np.float64)}

    nn("NonMaximumSuppression", "basic", {"boxes": boxes, "scores": scores},
       lambda b: b.add_nms("n", ["boxes", "scores"], ["ob", "os", "oi", "on"], iou_threshold=0.5,
                           score_threshold=0.2, max_boxes=4),
       nms_ref, nd=True, tol="fp32", outputs=["ob", "os", "oi", "on"])


def random_cases():
    g = rng("nd-random")
    x = f32(g, 2, 3)
    s = np.array([3, 4], np.float32)
    shape = np.zeros((3, 4))
    like = np.zeros((2, 3))
    specs = [
        ("randomNormalLike", lambda b: b.add_random_normal_like("r", "x", "y", mean=1.0, stddev=0.5, seed=3),
         {"x": x}, like),
        ("randomNormalStatic", lambda b: (b.add_random_normal_static("r", "k", [3, 4], seed=3),
                                          b.add_add_broadcastable("a", ["k", "x"], "y")),
         {"x": np.zeros((3, 4), np.float32)}, shape),
        ("randomNormalDynamic", lambda b: b.add_random_normal_dynamic("r", ["s"], "y", seed=3), {"s": s}, shape),
        ("randomUniformLike", lambda b: b.add_random_uniform_like("r", "x", "y", seed=3), {"x": x}, like),
        ("randomUniformStatic", lambda b: (b.add_random_uniform_static("r", "k", [3, 4], seed=3),
                                           b.add_add_broadcastable("a", ["k", "x"], "y")),
         {"x": np.zeros((3, 4), np.float32)}, shape),
        ("randomUniformDynamic", lambda b: b.add_random_uniform_dynamic("r", ["s"], "y", seed=3), {"s": s}, shape),
        ("randomBernoulliLike", lambda b: b.add_random_bernoulli_like("r", "x", "y", prob=0.3, seed=3),
         {"x": x}, like),
        ("randomBernoulliStatic", lambda b: (b.add_random_bernoulli_static("r", "k", [3, 4], seed=3),
                                             b.add_add_broadcastable("a", ["k", "x"], "y")),
         {"x": np.zeros((3, 4), np.float32)}, shape),
        ("randomBernoulliDynamic", lambda b: b.add_random_bernoulli_dynamic("r", ["s"], "y", seed=3), {"s": s},
         shape),
        ("categoricalDistribution", lambda b: b.add_categorical_distribution("r", "x", "y", num_samples=5, seed=3),
         {"x": x}, np.zeros((2, 5))),
    ]
    for layer, build, inputs, out in specs:
        nn(layer, "shape", inputs, build, lambda *a, out=out: out, nd=True, check="shape_only")


def cases():
    shape_cases()
    index_cases()
    nms_cases()
    random_cases()
