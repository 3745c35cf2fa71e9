"""Feature extraction, phase 2: the feature rows of a batch of programs, with numpy.

Input: the ``SummaryTables`` that ``loop_summary.summarise`` filled for many programs.
Output: per program, one row per buffer it stores to or allocates, of
``feature_length(max_n_bufs)`` floats (164 for five buffers), in TVM's order (paper
section 5.2, Table/Figure "features"; ``feature.cc`` ``GetPerStoreFeature``)::

    group 1  computation (57)        op counts x outer loops, vectorize/unroll/parallel
                                     (count, product, innermost extent, position one-hot),
                                     is_gpu, blockIdx.x/y/z, threadIdx.x/y/z, vthread lengths
    group 2  buffer access (5 x 18)  per buffer, by (lines, bytes) descending: access type,
                                     bytes, unique bytes, lines, unique lines, reuse type,
                                     reuse distance (iterations, bytes), reuse count, the
                                     four quantities divided by the reuse count, stride
    group 3  arithmetic intensity    flops / bytes at each loop level, sampled at 10
             curve (10)              evenly spaced fractions of the store's flops
    group 4  allocation (4)          bytes, bytes x outer loops, outer loops, inner loops
    group 5  outer scope (3)         product of outer loops, number of loops, auto_unroll

Every value passes through ``log2p(x) = sign(x) * log2(|x| + 1)`` (one-hots are 0 or 1,
which log2p leaves unchanged). When a buffer is stored several times (a reduction's init
and update), op counts add up and the other features are those of the last store, as in
TVM.

Everything below is whole-array arithmetic over the batch: loops are padded to the
deepest store (extent 1), dimensions to the widest buffer (extent 1, innermost first).
Three places deliberately differ from TVM's code, and say so: the ``lines`` reduce ratio
multiplies the extents of the loops actually skipped (TVM multiplies the innermost extent
each time), ``unique_lines`` uses this buffer's own region (TVM reuses the region of
whichever buffer it analysed last), and touched regions are clipped to the buffer's
shape (the loops of a split that does not divide run past it under a guard).
"""

from __future__ import annotations

import numpy as np

from ansor_py.cost_model.loop_summary import N_OP_COUNTS, N_STORE_SCALARS, SummaryTables

#: samples of the arithmetic-intensity curve
CURVE_SAMPLES = 10
#: features per buffer in group 2
ACCESS_FEATURES = 18
#: annotation position classes; the extractor emits only "none" and "mixed", as TVM's
POSITION_CLASSES = (
    "kPosNone",
    "kPosInnerSpatial",
    "kPosMiddleSpatial",
    "kPosOuterSpatial",
    "kPosInnerReduce",
    "kPosMiddleReduce",
    "kPosOuterReduce",
    "kPosMixed",
)
REUSE_LOOP_MULTIPLE_READ, REUSE_SERIAL_MULTIPLE_READ_WRITE, REUSE_NONE = 0, 1, 2

# columns of SummaryTables.store_scalars
_FLOPS = N_OP_COUNTS
_AUTO_UNROLL = N_OP_COUNTS + 1
_ANNOTATIONS = slice(N_OP_COUNTS + 2, N_OP_COUNTS + 11)
_GPU = slice(N_OP_COUNTS + 11, N_STORE_SCALARS)


def feature_length(max_n_bufs: int = 5) -> int:
    """57 + 18 * max_n_bufs + 10 + 4 + 3 (164 for the default five buffers)."""
    return 57 + ACCESS_FEATURES * max_n_bufs + CURVE_SAMPLES + 4 + 3


def log2p(x: np.ndarray) -> np.ndarray:
    """``sign(x) * log2(|x| + 1)``: Ansor's scaling of every feature."""
    return np.sign(x) * np.log2(np.abs(x) + 1.0)


def compute_features(tables: SummaryTables, cache_line_bytes: int, max_n_bufs: int = 5) -> list[np.ndarray]:
    """Per program of ``tables``: its feature rows, a float32 array [rows, feature_length]."""
    t = tables
    n_rows, n_stores = len(t.row_alloc), len(t.store_row)
    out = np.zeros((n_rows, feature_length(max_n_bufs)))
    if n_stores:
        stores = _StoreArrays(t)
        groups = _GroupArrays(t, stores)
        access = _access_features(groups, stores, cache_line_bytes)
        block = _top_buffers(access, groups, stores.n, max_n_bufs)
        curve = _intensity_curve(stores, groups)
        _fill_rows(out, t, stores, block, curve)
    _fill_allocation(out, t)
    scaled = log2p(out).astype(np.float32)
    bounds = [*t.program_first_row, n_rows]
    return [scaled[bounds[p] : bounds[p + 1]] for p in range(len(t.program_first_row))]


class _StoreArrays:
    """Per store: loop extents and ids padded to K loops, suffix products, scalars."""

    def __init__(self, t: SummaryTables):
        self.n = n = len(t.store_row)
        self.depth = np.asarray(t.store_depth, dtype=np.int64)
        self.k = k = int(self.depth.max(initial=0))
        self.extent = np.ones((n, k))
        self.loop_id = np.full((n, k), -1, dtype=np.int64)
        if t.store_loops:
            loops = np.array(t.store_loops, dtype=np.int64).reshape(-1, 4)
            self.extent[loops[:, 0], loops[:, 1]] = loops[:, 2]
            self.loop_id[loops[:, 0], loops[:, 1]] = loops[:, 3]
        self.valid = np.arange(k)[None, :] < self.depth[:, None]
        #: suffix[s, k] = product of the extents of loops k.. (innermost); suffix[:, K] = 1
        self.suffix = np.ones((n, k + 1))
        self.suffix[:, :k] = np.cumprod(self.extent[:, ::-1], axis=1)[:, ::-1]
        self.outer_prod = self.suffix[:, 0]
        self.scalars = np.array(t.store_scalars, dtype=np.float64).reshape(n, N_STORE_SCALARS)
        self.row = np.asarray(t.store_row, dtype=np.int64)


class _GroupArrays:
    """Per (store, buffer) group: the region it touches at every loop level."""

    def __init__(self, t: SummaryTables, s: _StoreArrays):
        self.n = ng = len(t.group_store)
        k = s.k
        self.store = np.asarray(t.group_store, dtype=np.int64)
        self.buffer = np.asarray(t.group_buffer, dtype=np.int64)
        self.access_type = np.asarray(t.group_access_type, dtype=np.int64)
        self.elem_bytes = np.asarray(t.group_elem_bytes, dtype=np.float64)
        self.depth = s.depth[self.store]
        self.outer_prod = s.outer_prod[self.store]
        shape_entries = np.array(t.group_shape, dtype=np.int64).reshape(-1, 3)
        d = max(int(shape_entries[:, 1].max(initial=-1)) + 1, 1)
        self.shape = np.ones((ng, d))
        self.shape[shape_entries[:, 0], shape_entries[:, 1]] = shape_entries[:, 2]

        access_group = np.asarray(t.access_group, dtype=np.int64)
        na = len(access_group)
        const = np.zeros((na, d))
        entries = np.array(t.access_const, dtype=np.int64).reshape(-1, 3)
        const[entries[:, 0], entries[:, 1]] = entries[:, 2]
        # spans per (access, dimension, level); column K is "no loop relaxed"
        up = np.zeros((na, d, k + 1))
        down = np.zeros((na, d, k + 1))
        spans = np.array(t.access_span, dtype=np.int64).reshape(-1, 4)
        span = spans[:, 3].astype(np.float64)
        index = (spans[:, 0], spans[:, 1], spans[:, 2])
        np.add.at(up, index, np.maximum(span, 0.0))
        np.add.at(down, index, np.minimum(span, 0.0))
        hi = const[:, :, None] + np.cumsum(up[:, :, ::-1], axis=2)[:, :, ::-1]
        lo = const[:, :, None] + np.cumsum(down[:, :, ::-1], axis=2)[:, :, ::-1]
        # accesses are stored group after group, every group has at least one
        starts = np.flatnonzero(np.r_[True, access_group[1:] != access_group[:-1]])
        #: region[g, d, k]: elements of dimension d touched with loops k.. relaxed, at most
        #: the dimension (an index past it can only come from a guarded-off iteration)
        region = np.maximum.reduceat(hi, starts, axis=0) - np.minimum.reduceat(lo, starts, axis=0) + 1
        self.region = np.minimum(region, self.shape[:, :, None])
        self.touched = np.prod(self.region, axis=1)

        coef = np.zeros((na, k))
        reads = np.zeros((na, k), dtype=bool)
        loops = np.array(t.access_loop, dtype=np.int64).reshape(-1, 3)
        coef[loops[:, 0], loops[:, 1]] = loops[:, 2]
        reads[loops[:, 0], loops[:, 1]] = True
        smallest = np.minimum.reduceat(np.where(coef > 0, coef, np.inf), starts, axis=0) if k else coef[:0]
        #: stride[g, k]: smallest |flat coefficient| of loop k over the group's accesses
        self.stride = np.where(np.isfinite(smallest), smallest, 0.0).reshape(ng, k)
        #: reads[g, k]: some access of the group reads loop k
        self.reads = (np.logical_or.reduceat(reads, starts, axis=0) if k else reads[:0]).reshape(ng, k)
        self.valid = s.valid[self.store]


def _access_features(g: _GroupArrays, s: _StoreArrays, cache_line: int) -> np.ndarray:
    """The 18 group-2 features of every group (TVM ``ExtractBufferAccessFeature``)."""
    k = s.k
    rows = np.arange(g.n)
    nbytes = g.outer_prod * g.elem_bytes
    unique_bytes = g.touched[:, 0] * g.elem_bytes

    # stride: the innermost loop whose variable moves the index; lines from it
    has = g.stride > 0
    found = has.any(axis=1)
    first = np.where(found, k - 1 - np.argmax(has[:, ::-1], axis=1), -1) if k else np.full(g.n, -1)
    stride = np.where(found, g.stride[rows, np.clip(first, 0, None)] if k else 0.0, 0.0)
    reduce_ratio = s.suffix[g.store, first + 1]
    lines = g.outer_prod / reduce_ratio * np.minimum(1.0, stride * g.elem_bytes / cache_line)
    lines = np.maximum(lines, 1.0)
    stride_feature = np.where(first == g.depth - 1, stride, 0.0)

    # unique lines: the contiguous run of the outermost region, innermost dimension first
    outer_region = g.region[:, :, 0]
    run = outer_region[:, 0].copy()
    full = outer_region[:, 0] == g.shape[:, 0]
    for d in range(1, outer_region.shape[1]):
        run = np.where(full, run * outer_region[:, d], run)
        full &= outer_region[:, d] == g.shape[:, d]
    unique_lines = np.maximum(unique_bytes / np.minimum(run * g.elem_bytes, cache_line), 1.0)

    reuse_type, dis_iter, dis_bytes, reuse_ct = _reuse(g, s)
    divisor = np.where(reuse_ct > 0.5, reuse_ct, 0.5)  # no reuse: times 2, as TVM
    feats = np.zeros((g.n, ACCESS_FEATURES))
    feats[rows, g.access_type] = 1.0
    feats[:, 3:7] = np.stack([nbytes, unique_bytes, lines, unique_lines], axis=1)
    feats[rows, 7 + reuse_type] = 1.0
    feats[:, 10:13] = np.stack([dis_iter, dis_bytes, reuse_ct], axis=1)
    feats[:, 13:17] = feats[:, 3:7] / divisor[:, None]
    feats[:, 17] = stride_feature
    return feats


def _reuse(g: _GroupArrays, s: _StoreArrays) -> tuple[np.ndarray, ...]:
    """TVM ``ComputeReuse``: going out from the innermost loop, the first loop whose
    variable the buffer's indices do not read gives LoopMultipleRead reuse (count = its
    extent); the first loop under which earlier stores touched the buffer too gives
    SerialMultipleReadWrite reuse (count = those earlier touches); else NoReuse.

    "Touched under loop L" includes every store visited so far under L, this one
    included, so the sums are running sums over the stores under each loop (stores under
    one loop are consecutive in program order)."""
    n, k = g.n, s.k
    if k == 0:
        return np.full(n, REUSE_NONE), np.zeros(n), np.zeros(n), np.zeros(n)
    mem = np.zeros((s.n, k + 1))
    np.add.at(mem, g.store, g.touched * g.elem_bytes[:, None])
    elem = np.zeros(s.n)
    np.add.at(elem, g.store, g.elem_bytes)
    touched_bytes = _running_sum(mem[:, :k], s.loop_id, s.valid)
    elem_bytes = _running_sum(np.repeat(elem[:, None], k, axis=1), s.loop_id, s.valid)
    count, smallest = _running_count_min(g, s)

    stop = g.valid & (~g.reads | (count > 1))
    any_stop = stop.any(axis=1)
    at = k - 1 - np.argmax(stop[:, ::-1], axis=1)
    rows = np.arange(n)
    extent = s.extent[g.store, at]
    loop_multiple = any_stop & ~g.reads[rows, at]
    serial = any_stop & g.reads[rows, at]
    innermost = at + 1 >= g.depth
    lmr_bytes = np.where(
        innermost, elem_bytes[g.store, at], touched_bytes[g.store, np.minimum(at + 1, k - 1)]
    )
    reuse_type = np.where(
        loop_multiple,
        REUSE_LOOP_MULTIPLE_READ,
        np.where(serial, REUSE_SERIAL_MULTIPLE_READ_WRITE, REUSE_NONE),
    )
    dis_iter = np.where(
        loop_multiple, s.suffix[g.store, at + 1], np.where(serial, smallest[rows, at] / extent, 0)
    )
    dis_bytes = np.where(loop_multiple, lmr_bytes, np.where(serial, touched_bytes[g.store, at] / extent, 0))
    reuse_ct = np.where(loop_multiple, extent, np.where(serial, count[rows, at] - 1, 0))
    return reuse_type, dis_iter.astype(float), dis_bytes.astype(float), reuse_ct.astype(float)


def _running_sum(values: np.ndarray, loop_id: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Column by column: the sum of ``values`` over the stores so far under the same loop."""
    values = np.where(valid, values, 0.0)
    total = np.cumsum(values, axis=0)
    n = values.shape[0]
    new = np.ones_like(loop_id, dtype=bool)
    new[1:] = loop_id[1:] != loop_id[:-1]
    start = np.maximum.accumulate(np.where(new, np.arange(n)[:, None], 0), axis=0)
    before = np.take_along_axis(total, start, axis=0) - np.take_along_axis(values, start, axis=0)
    return total - before


def _running_count_min(g: _GroupArrays, s: _StoreArrays) -> tuple[np.ndarray, np.ndarray]:
    """Per group and loop level: how many groups of the same buffer the stores so far
    under that loop have (this one included), and the fewest elements any of them touched."""
    count = np.zeros((g.n, s.k), dtype=np.int64)
    smallest = np.zeros((g.n, s.k))
    loop_of_group = s.loop_id[g.store]
    touched = g.touched.astype(np.int64)
    for level in range(s.k):
        members = np.flatnonzero(g.valid[:, level])
        if members.size == 0:
            continue
        loop = loop_of_group[members, level]
        buffer = g.buffer[members]
        order = members[np.lexsort((members, buffer, loop))]
        loop, buffer = loop_of_group[order, level], g.buffer[order]
        new = np.r_[True, (loop[1:] != loop[:-1]) | (buffer[1:] != buffer[:-1])]
        segment = np.cumsum(new) - 1
        first = np.flatnonzero(new)
        count[order, level] = np.arange(order.size) - first[segment] + 1
        # a running minimum restarted at each segment: shift later segments far below
        values = touched[order, level]
        shift = int(values.max()) + 1
        shifted = values - segment * shift
        smallest[order, level] = np.minimum.accumulate(shifted) + segment * shift
    return count, smallest


def _top_buffers(access: np.ndarray, g: _GroupArrays, n_stores: int, max_n_bufs: int) -> np.ndarray:
    """Per store: its groups' access features, by (lines, bytes) descending, top max_n_bufs."""
    order = np.lexsort((-access[:, 3], -access[:, 5], g.store))
    store = g.store[order]
    first = np.flatnonzero(np.r_[True, store[1:] != store[:-1]])
    rank = np.arange(order.size) - np.repeat(first, np.diff(np.r_[first, order.size]))
    keep = rank < max_n_bufs
    block = np.zeros((n_stores, max_n_bufs, ACCESS_FEATURES))
    block[store[keep], rank[keep]] = access[order[keep]]
    return block.reshape(n_stores, -1)


def _intensity_curve(s: _StoreArrays, g: _GroupArrays) -> np.ndarray:
    """Group 3: flops/bytes against cumulative flops over the loop levels (inner to
    outer), linearly interpolated at ``total * (i + 1) / 10`` (TVM
    ``ExtractArithmeticIntensityFeature``)."""
    curve = np.zeros((s.n, CURVE_SAMPLES))
    if s.k == 0:
        return curve
    mem = np.zeros((s.n, s.k + 1))
    np.add.at(mem, g.store, g.touched * g.elem_bytes[:, None])
    flops = s.scalars[:, _FLOPS]
    # level j counted from the innermost loop; past the outermost loop (shallower stores)
    # the outermost level repeats, so the search below never runs into the padding
    column = np.clip(s.depth[:, None] - 1 - np.arange(s.k)[None, :], 0, None)
    ops = flops[:, None] * np.take_along_axis(s.suffix, column, axis=1)
    intensity = ops / np.take_along_axis(mem, column, axis=1)
    total = flops * s.outer_prod
    active = (flops > 0) & (s.depth > 0)
    rows = np.arange(s.n)
    for i in range(CURVE_SAMPLES):
        target = total * (i + 1) / CURVE_SAMPLES
        point = np.argmax(ops >= (target - 1e-4)[:, None], axis=1)
        prev = np.maximum(point - 1, 0)
        x0, x1 = ops[rows, prev], ops[rows, point]
        y0, y1 = intensity[rows, prev], intensity[rows, point]
        step = np.where(point > 0, x1 - x0, 1.0)
        value = np.where(point > 0, y0 + (y1 - y0) / step * (target - x0), y1)
        curve[:, i] = np.where(active, value, 0.0)
    return curve


def _fill_rows(
    out: np.ndarray, t: SummaryTables, s: _StoreArrays, block: np.ndarray, curve: np.ndarray
) -> None:
    """Groups 1, 2, 3 and 5 of every row from its stores (op counts summed, the rest
    from the last store)."""
    counts = s.scalars[:, :N_OP_COUNTS] * s.outer_prod[:, None]
    np.add.at(out[:, :N_OP_COUNTS], s.row, counts)
    last = np.full(out.shape[0], -1)
    np.maximum.at(last, s.row, np.arange(s.n))
    rows = np.flatnonzero(last >= 0)
    last = last[rows]
    col = N_OP_COUNTS
    annotations = s.scalars[last, _ANNOTATIONS].reshape(-1, 3, 3)  # (vec, unroll, parallel) x 3
    for kind in range(3):
        num = annotations[:, kind, 0]
        out[rows, col : col + 3] = annotations[:, kind]
        positions = np.zeros((rows.size, len(POSITION_CLASSES)))
        positions[:, 0] = num == 0
        positions[:, -1] = num > 0
        out[rows, col + 3 : col + 3 + len(POSITION_CLASSES)] = positions
        col += 3 + len(POSITION_CLASSES)
    out[rows, col : col + 8] = s.scalars[last, _GPU]
    col += 8
    out[rows, col : col + block.shape[1]] = block[last]
    col += block.shape[1]
    out[rows, col : col + CURVE_SAMPLES] = curve[last]
    out[rows, -3] = s.outer_prod[last]
    out[rows, -2] = s.depth[last]
    out[rows, -1] = s.scalars[last, _AUTO_UNROLL]


def _fill_allocation(out: np.ndarray, t: SummaryTables) -> None:
    """Group 4 (TVM ``ExtractAllocationFeature``): size, size x outer loops, outer loops,
    and the loops between the allocation and the buffer's last store."""
    if not t.row_alloc:
        return
    alloc = np.asarray(t.row_alloc, dtype=np.float64)
    nbytes, elements, outer = alloc[:, 0], alloc[:, 1], alloc[:, 2]
    store_outer = out[:, -3]  # the product of loops around the last store (not yet scaled)
    inner = np.divide(store_outer, outer, out=np.zeros_like(outer), where=outer > 0)
    out[:, -7:-3] = np.stack([nbytes, elements * outer, outer, inner], axis=1)
