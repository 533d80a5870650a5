"""The binary GEMM's inner loop, chosen from the CPU it is compiled for, written as LLVM vector IR.

Why explicit IR and not numba's auto-vectorised loop: LLVM's Intel server targets
(``skylake-avx512`` .. ``sapphirerapids`` / ``emeraldrapids``) prefer 256-bit vectors, so the
auto-vectorised popcount loop of :func:`.cpu.binary_gemm` becomes ``vpopcntq ymm`` there, which
issues on one port (p5) at 256 bits per cycle, while on AMD Zen 4 the same source gets ``zmm``.
Here every micro-kernel states its vector width (``<8 x i64>`` or ``<4 x i64>``) and marks its
function ``"min-legal-vector-width"="512"`` so the backend keeps 512-bit registers whatever the
CPU's tuning prefers; the instructions come from LLVM's lowering for the target: ``llvm.ctpop``
on a vector is ``vpopcntq`` with AVX-512 VPOPCNTDQ and a ``vpshufb`` nibble table otherwise,
and the carry-save adders become ``vpternlogq`` with AVX-512.

Layout (one micro-kernel for every path): the weights are transposed, ``bt[w, n]`` (word ``w``
of weight row ``n``), padded to a multiple of the tile's columns, so a vector holds one word of
``lanes`` consecutive output columns; an activation word is broadcast. A tile is ``rows`` rows
of A by ``cols * lanes`` columns; its sums are never reduced across lanes, and the epilogue
writes ``k - 2 sum`` (int32) for a row with one vector store per ``lanes`` columns (masked only
in a tile that passes the last column).

Counting (``Path.count``):

``popcnt``  ``acc += popcount(a ^ b)`` per word: xor, vpopcntq, add.
``harley-seal``  per 16 words, a carry-save-adder tree (Harley and Seal, via Mula, Kurz and
    Lemire, "Faster population counts using AVX2 instructions", 2018) leaves one word of
    weight 16 to popcount; ones, twos, fours and eights are popcounted once per tile.
    Options per path (:class:`Path`): ``shared_loop=False`` runs a tile's (row, column vector)
    pairs one after another, each with its own loop over the words (16 ymm registers hold one
    pair's state, not two; the rows reuse the B panel from L1); ``peel_first`` takes the first
    block out of the loop so that its zero state folds 4 of its 15 adders into half adders;
    ``byte_lut`` counts the last ones .. eights by nibble tables of ``weight * popcount`` and
    one ``psadbw``.

Which path a CPU takes is :data:`PATHS` (a table) keyed by :func:`detect` on the features
numba compiles for: the host's, or ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` when set (set
both to force a path on any machine: ``benchmarks/kernels.py cpu --path``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@dataclass(frozen=True)
class Path:
    """One inner loop: vector width, tile shape and counting method."""

    name: str
    lanes: int  # uint64 per vector: 8 (512-bit) or 4 (256-bit)
    rows: int  # rows of A per tile (each activation word broadcast once per tile column)
    cols: int  # vectors of output columns per tile
    count: str  # "popcnt" | "harley-seal"
    requires: tuple[str, ...]  # LLVM feature names the path needs
    #: one loop over K for all rows * cols pairs of a tile (their accumulators all live), or
    #: one loop per pair, each stored before the next starts (fewer registers)
    shared_loop: bool = True
    #: Harley-Seal's last counts by one weighted nibble table per level and one ``psadbw``
    #: (:func:`_weighted_popcount`; x86 with ``pshufb`` at the path's width)
    byte_lut: bool = False
    #: Harley-Seal's first block outside the loop, its zero state folded: 4 of its 15 CSAs
    #: become half adders (3 operations fewer each with the 5-operation CSA; none with
    #: ``vpternlogq``, where a CSA is 2 operations either way)
    peel_first: bool = False

    @property
    def tile_cols(self) -> int:
        return self.cols * self.lanes


#: every path, best first; :func:`detect` takes the first whose features the target has.
#: Tile shapes fill the register file (32 zmm / 16 ymm) without spills: popcnt tiles keep
#: rows * cols accumulators, harley-seal tiles 5 vectors (ones .. eights, total) per pair.
PATHS: dict[str, Path] = {
    path.name: path
    for path in (
        Path("avx512-vpopcntdq", 8, 8, 2, "popcnt", ("avx512f", "avx512vpopcntdq")),
        Path("avx512", 8, 2, 1, "harley-seal", ("avx512f", "avx512bw")),
        Path("avx2", 4, 8, 1, "harley-seal", ("avx2",), shared_loop=False, byte_lut=True,
             peel_first=True),
        Path("generic", 2, 1, 2, "harley-seal", ()),
    )
}


def target_features() -> tuple[str, set[str]]:
    """The CPU name and the enabled features numba compiles for (its own rule: the host's,
    unless ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` say otherwise)."""
    import llvmlite.binding as ll
    from numba.core import config

    name = getattr(config, "CPU_NAME", None) or ll.get_host_cpu_name()
    spec = getattr(config, "CPU_FEATURES", None)
    if spec is None:
        spec = ll.get_host_cpu_features().flatten()
    enabled = {f[1:] for f in spec.split(",") if f.startswith("+")}
    return name, enabled


def detect() -> Path:
    """The first path of :data:`PATHS` whose features the compile target has. (No override of
    its own: numba's cache is keyed by the CPU name and features, so a path forced any other
    way could meet cached code of another tile shape.)"""
    _, enabled = target_features()
    return next(p for p in PATHS.values() if all(f in enabled for f in p.requires))


#: the CPU name numba targets to compile each path on any x86 machine that has its features
#: (tests, benchmarks): its scheduling model and tuning come with the name, and the path's
#: features are added explicitly (``NUMBA_CPU_FEATURES``), so nothing else of the host leaks in
FORCE_CPU: dict[str, str] = {
    "avx512-vpopcntdq": "sapphirerapids",  # Intel server tuning: prefers 256-bit vectors
    "avx512": "skylake-avx512",
    "avx2": "haswell",
    "generic": "x86-64-v2",
}


def forced_env(name: str) -> dict[str, str]:
    """``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` that make numba compile path ``name``."""
    return {"NUMBA_CPU_NAME": FORCE_CPU[name],
            "NUMBA_CPU_FEATURES": ",".join(f"+{f}" for f in PATHS[name].requires)}


# ------------------------------------------------------------------------------ IR helpers

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def _wide(builder: Any) -> None:
    """Let the enclosing function keep 512-bit vectors whatever the CPU's tuning prefers."""
    attrs = builder.function.attributes
    for attr in ('"min-legal-vector-width"="512"', '"prefer-vector-width"="512"'):
        set.add(attrs, attr)  # string attributes: llvmlite's add() only knows keyword ones


def _splat(builder: Any, value: Any, lanes: int) -> Any:
    vec = ir.VectorType(value.type, lanes)
    one = builder.insert_element(ir.Constant(vec, ir.Undefined), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(vec, ir.Undefined),
                                  ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes))


def _load_vec(builder: Any, base: Any, index: Any, lanes: int) -> Any:
    ptr = builder.gep(base, [index])
    vptr = builder.bitcast(ptr, ir.VectorType(_I64, lanes).as_pointer())
    return builder.load(vptr, align=8)


def _intrinsic(builder: Any, name: str, ret: Any, args: list[Any]) -> Any:
    """A call of the LLVM intrinsic ``name`` (declared once per module) on ``args``."""
    fn = builder.module.globals.get(name)
    if fn is None:
        fn = ir.Function(builder.module, ir.FunctionType(ret, [a.type for a in args]), name=name)
    return builder.call(fn, args)


def _ctpop(builder: Any, value: Any) -> Any:
    """``llvm.ctpop`` on a vector (llvmlite's ``builder.ctpop`` takes scalars only)."""
    return _intrinsic(builder, f"llvm.ctpop.v{value.type.count}i64", value.type, [value])


def _ternlog(builder: Any, a: Any, b: Any, c: Any, imm: int) -> Any:
    """``vpternlogq`` (AVX-512F) with truth table ``imm`` (0x96: a ^ b ^ c, 0xE8: majority)."""
    return _intrinsic(builder, "llvm.x86.avx512.pternlog.q.512", a.type,
                      [a, b, c, ir.Constant(_I32, imm)])


def _csa(builder: Any, a: Any, b: Any, c: Any, ternary: bool) -> tuple[Any, Any]:
    """Carry-save adder: (carry, sum) with ``a + b + c = 2 carry + sum`` bitwise. ``ternary``
    (AVX-512): one ``vpternlogq`` each (LLVM's own matching made three of the pair); else the
    5-operation form sharing ``a ^ b``."""
    if ternary:
        return _ternlog(builder, a, b, c, 0xE8), _ternlog(builder, a, b, c, 0x96)
    u = builder.xor(a, b)
    return builder.or_(builder.and_(a, b), builder.and_(u, c)), builder.xor(u, c)


#: ``pshufb`` and ``psadbw`` of each vector width (bytes)
_BYTE_OPS = {16: ("llvm.x86.ssse3.pshuf.b.128", "llvm.x86.sse2.psad.bw"),
             32: ("llvm.x86.avx2.pshuf.b", "llvm.x86.avx2.psad.bw"),
             64: ("llvm.x86.avx512.pshuf.b.512", "llvm.x86.avx512.psad.bw.512")}


def _weighted_popcount(builder: Any, levels: tuple[tuple[int, Any], ...]) -> Any:
    """``sum weight * popcount(v)`` per i64 lane over (weight, v) ``levels`` (weights with
    ``8 * sum(weights) < 256``): each byte's nibbles look up ``weight * popcount`` in a
    16-entry table (``pshufb``, Mula's method with the weight folded into the table), the
    levels add as bytes, and one ``psadbw`` sums each lane's 8 bytes. Against ``llvm.ctpop``
    per level (its own lookups and ``psadbw``), a shift and an add: 2 operations fewer per
    level and one ``psadbw`` in all."""
    lanes = levels[0][1].type.count
    nbytes = 8 * lanes
    shuf, sad = _BYTE_OPS[nbytes]
    bvec = ir.VectorType(ir.IntType(8), nbytes)
    low = ir.Constant(bvec, [15] * nbytes)
    acc = None
    for weight, v in levels:
        table = ir.Constant(bvec, [weight * bin(i & 15).count("1") for i in range(nbytes)])
        vb = builder.bitcast(v, bvec)
        for nibble in (builder.and_(vb, low),
                       builder.and_(builder.lshr(vb, ir.Constant(bvec, [4] * nbytes)), low)):
            part = _intrinsic(builder, shuf, bvec, [table, nibble])
            acc = part if acc is None else builder.add(acc, part)
    return _intrinsic(builder, sad, ir.VectorType(_I64, lanes), [acc, ir.Constant(bvec, None)])


def _masked_store(builder: Any, value: Any, ptr: Any, mask: Any) -> None:
    _intrinsic(builder, f"llvm.masked.store.v{value.type.count}i32.p0", ir.VoidType(),
               [value, ptr, ir.Constant(_I32, 4), mask])


class _Loop:
    """``for idx in range(start, stop)`` with loop-carried values as phis (no allocas)."""

    def __init__(self, builder: Any, start: Any, stop: Any, init: list[Any], name: str):
        self.builder = builder
        fn = builder.function
        self.pre = builder.block
        self.head = fn.append_basic_block(f"{name}.head")
        self.body = fn.append_basic_block(f"{name}.body")
        self.exit = fn.append_basic_block(f"{name}.exit")
        builder.branch(self.head)
        builder.position_at_end(self.head)
        self.idx = builder.phi(_I64)
        self.idx.add_incoming(start, self.pre)
        self.vals = []
        for v in init:
            phi = builder.phi(v.type)
            phi.add_incoming(v, self.pre)
            self.vals.append(phi)
        builder.cbranch(builder.icmp_signed("<", self.idx, stop), self.body, self.exit)
        builder.position_at_end(self.body)

    def close(self, step: int, new_vals: list[Any]) -> list[Any]:
        b = self.builder
        nxt = b.add(self.idx, ir.Constant(_I64, step))
        latch = b.block
        b.branch(self.head)
        self.idx.add_incoming(nxt, latch)
        for phi, v in zip(self.vals, new_vals, strict=True):
            phi.add_incoming(v, latch)
        b.position_at_end(self.exit)
        return list(self.vals)


def _tile_sums(builder: Any, path: Path, row_ids: range, col_ids: range, a_data: Any,
               n_words: Any, bt_data: Any, ldb: Any, i: Any, j: Any) -> list[list[Any]]:
    """``sums[r][c]``: <lanes x i64> of ``sum_w popcount(a[i + R, w] ^ bt[w, j + C L + l])``
    for the ``r``-th row ``R`` of ``row_ids`` and ``c``-th column vector ``C`` of ``col_ids``,
    all in one loop over the words."""
    lanes = path.lanes
    rows, cols = len(row_ids), len(col_ids)
    vec = ir.VectorType(_I64, lanes)
    zero = ir.Constant(vec, None)
    a_rows = [builder.mul(builder.add(i, ir.Constant(_I64, r)), n_words) for r in row_ids]
    panel = builder.mul(j, n_words)  # the tile's panel: (n_words, ldb) words from j * n_words

    def products(w: Any) -> list[list[Any]]:
        bvec = [_load_vec(builder, bt_data, builder.add(builder.add(panel, builder.mul(w, ldb)),
                                                    ir.Constant(_I64, col * lanes)), lanes)
            for col in col_ids]
        out = []
        for r in range(rows):
            a_word = builder.load(builder.gep(a_data, [builder.add(a_rows[r], w)]), align=8)
            av = _splat(builder, a_word, lanes)
            out.append([builder.xor(av, bvec[c]) for c in range(cols)])
        return out

    pairs = rows * cols
    start = ir.Constant(_I64, 0)
    if path.count == "popcnt":
        loop = _Loop(builder, start, n_words, [zero] * pairs, "pc")
        x = products(loop.idx)
        acc = loop.close(1, [builder.add(loop.vals[r * cols + c], _ctpop(builder, x[r][c]))
                             for r in range(rows) for c in range(cols)])
        return [[acc[r * cols + c] for c in range(cols)] for r in range(rows)]

    # Harley-Seal: blocks of 16 words through a CSA tree, one (row, column vector) at a time
    # so that only one pair's 16 words are live
    blocks_end = builder.and_(n_words, ir.Constant(_I64, ~15))
    state = ("ones", "twos", "fours", "eights", "sixteens")
    ternary = path.lanes == 8

    def block(base: Any, vals: list[Any | None]) -> list[Any]:
        """Words ``base .. base + 15`` of every pair into its state (``None``: still zero)."""

        def csa(x: Any | None, y: Any, z: Any) -> tuple[Any, Any]:
            if x is None:  # a zero input: a half adder, 2 operations instead of 5
                return builder.and_(y, z), builder.xor(y, z)
            return _csa(builder, x, y, z, ternary)

        new: list[Any] = []
        for r in range(rows):
            for c in range(cols):
                ones, twos, fours, eights, total = vals[len(state) * (r * cols + c):][:5]

                def d(t: int, r: int = r, c: int = c) -> Any:
                    w = builder.add(base, ir.Constant(_I64, t))
                    col = ir.Constant(_I64, col_ids[c] * lanes)
                    bvec = _load_vec(builder, bt_data,
                                     builder.add(builder.add(panel, builder.mul(w, ldb)), col),
                                     lanes)
                    a_word = builder.load(builder.gep(a_data, [builder.add(a_rows[r], w)]),
                                          align=8)
                    return builder.xor(_splat(builder, a_word, lanes), bvec)

                def eight(first: int, ones: Any, twos: Any, fours: Any,
                          d: Any = d) -> tuple[Any, Any, Any, Any]:
                    """Words ``first .. first + 7`` into (eights carry, ones, twos, fours)."""
                    twos_a, ones = csa(ones, d(first), d(first + 1))
                    twos_b, ones = csa(ones, d(first + 2), d(first + 3))
                    fours_a, twos = csa(twos, twos_a, twos_b)
                    twos_a, ones = csa(ones, d(first + 4), d(first + 5))
                    twos_b, ones = csa(ones, d(first + 6), d(first + 7))
                    fours_b, twos = csa(twos, twos_a, twos_b)
                    carry, fours = csa(fours, fours_a, fours_b)
                    return carry, ones, twos, fours

                eights_a, ones, twos, fours = eight(0, ones, twos, fours)
                eights_b, ones, twos, fours = eight(8, ones, twos, fours)
                sixteens, eights = csa(eights, eights_a, eights_b)
                count = _ctpop(builder, sixteens)
                new += [ones, twos, fours, eights,
                        count if total is None else builder.add(total, count)]
        return new

    init: list[Any] = [zero] * (len(state) * pairs)
    if path.peel_first:  # the first block from zero state, outside the loop
        pre = builder.block
        with builder.if_then(builder.icmp_signed(">=", n_words, ir.Constant(_I64, 16)),
                             likely=True):
            first = block(ir.Constant(_I64, 0), [None] * len(init))
            peeled = builder.block
        merged = []
        for v in first:
            phi = builder.phi(v.type)
            phi.add_incoming(v, peeled)
            phi.add_incoming(zero, pre)
            merged.append(phi)
        init = merged
        start = ir.Constant(_I64, 16)  # past blocks_end (0) when there was no block
    loop = _Loop(builder, start, blocks_end, init, "hs")
    st = loop.close(16, block(loop.idx, list(loop.vals)))
    # the remaining words one at a time
    tail = _Loop(builder, blocks_end, n_words, [zero] * pairs, "tail")
    x = products(tail.idx)
    rest = tail.close(1, [builder.add(tail.vals[r * cols + c], _ctpop(builder, x[r][c]))
                          for r in range(rows) for c in range(cols)])
    sums = []
    for r in range(rows):
        row = []
        for c in range(cols):
            ones, twos, fours, eights, total = st[len(state) * (r * cols + c):][:5]
            s = builder.add(rest[r * cols + c], builder.mul(total, ir.Constant(vec, 16)))
            levels = ((8, eights), (4, fours), (2, twos), (1, ones))
            if path.byte_lut:
                s = builder.add(s, _weighted_popcount(builder, levels))
            else:
                for weight, part in levels:
                    s = builder.add(s, builder.mul(_ctpop(builder, part),
                                                   ir.Constant(vec, weight)))
            row.append(s)
        sums.append(row)
    return sums


def make_tile(path: Path, rows: int) -> Any:
    """An intrinsic ``tile(a, bt, k, out, i, j)``: ``out[i + r, j + n] = k - 2 popcount-sum``
    for ``r < rows`` and the tile's columns below ``out.shape[1]`` (masked stores)."""

    @intrinsic
    def tile(typingctx, a, bt, k, out, i, j):  # type: ignore[no-untyped-def]
        if any(getattr(arr, "layout", None) != "C" for arr in (a, bt, out)):
            return None  # the IR indexes the arrays' data as C-contiguous
        sig = types.void(a, bt, k, out, i, j)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            _wide(builder)
            a_arr = context.make_array(signature.args[0])(context, builder, args[0])
            bt_arr = context.make_array(signature.args[1])(context, builder, args[1])
            out_arr = context.make_array(signature.args[3])(context, builder, args[3])
            k_val = context.cast(builder, args[2], signature.args[2], types.int64)
            i_val = context.cast(builder, args[4], signature.args[4], types.int64)
            j_val = context.cast(builder, args[5], signature.args[5], types.int64)
            n_words = cgutils.unpack_tuple(builder, a_arr.shape)[1]
            # the panels are tile_cols words wide (``cpu.pack_panels``): a constant stride lets
            # every word of a block load at a fixed offset from one pointer (no address adds)
            ldb = ir.Constant(_I64, path.tile_cols)
            n_out = cgutils.unpack_tuple(builder, out_arr.shape)[1]
            lanes = path.lanes
            vec = ir.VectorType(_I64, lanes)
            kv = _splat(builder, k_val, lanes)
            masks = []
            for c in range(path.cols):
                col = builder.add(_splat(builder, j_val, lanes),
                                  ir.Constant(vec, [c * lanes + lane for lane in range(lanes)]))
                masks.append(builder.icmp_signed("<", col, _splat(builder, n_out, lanes)))

            # a masked store only where the tile passes out's last column: without AVX-512,
            # ``vpmaskmovd`` (AVX2) or per-lane branches (SSE) cost about 5.5 cycles per
            # (row, vector) pair more than a plain store on Zen 4 (AVX2 path, 76 -> 70.5)
            full = builder.icmp_signed("<=", builder.add(j_val, ir.Constant(_I64, path.tile_cols)),
                                       n_out)

            def store(row: Any, c: int, s: Any) -> None:
                val = builder.trunc(builder.sub(kv, builder.add(s, s)),
                                    ir.VectorType(_I32, lanes))
                col = builder.add(j_val, ir.Constant(_I64, c * lanes))
                ptr = builder.gep(out_arr.data, [builder.add(builder.mul(row, n_out), col)])
                with builder.if_else(full, likely=True) as (whole, part):
                    with whole:  # the tile's columns all inside ``out``: a plain store
                        builder.store(val, builder.bitcast(ptr, val.type.as_pointer()), align=4)
                    with part:
                        _masked_store(builder, val, ptr, masks[c])

            def sums(rows_ids: range, col_ids: range, i: Any) -> list[list[Any]]:
                return _tile_sums(builder, path, rows_ids, col_ids, a_arr.data, n_words,
                                  bt_arr.data, ldb, i, j_val)

            if path.shared_loop:
                for r, row_sums in enumerate(sums(range(rows), range(path.cols), i_val)):
                    for c, s in enumerate(row_sums):
                        store(builder.add(i_val, ir.Constant(_I64, r)), c, s)
            else:  # one (row, column vector) pair at a time, its rows a runtime loop
                for c in range(path.cols):
                    loop = _Loop(builder, ir.Constant(_I64, 0), ir.Constant(_I64, rows), [],
                                 f"row{c}")
                    row = builder.add(i_val, loop.idx)
                    store(row, c, sums(range(1), range(c, c + 1), row)[0][0])
                    loop.close(1, [])
            return context.get_dummy_value()

        return sig, codegen

    return tile


#: independent popcount chains in :func:`popcount_probe` (enough to cover latency x issue width)
PROBE_CHAINS = 16


def make_popcount_probe(path: Path) -> Any:
    """An intrinsic ``probe(iters) -> uint64``: ``iters`` x :data:`PROBE_CHAINS` dependent vector
    popcounts (``v = ctpop(v)``, registers only) of the path's width, lowered as the GEMM's are.
    Its rate is the popcount roofline: the bits a CPU can popcount per second on this path."""

    @intrinsic
    def probe(typingctx, iters):  # type: ignore[no-untyped-def]
        sig = types.uint64(iters)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            _wide(builder)
            lanes = path.lanes
            vec = ir.VectorType(_I64, lanes)
            n = context.cast(builder, args[0], signature.args[0], types.int64)
            seed = _splat(builder, n, lanes)  # runtime values: nothing to constant-fold
            init = [builder.mul(seed, ir.Constant(vec, [(0x9E3779B97F4A7C15 * (c + 1 + lane))
                                                        % (1 << 63) for lane in range(lanes)]))
                    for c in range(PROBE_CHAINS)]
            loop = _Loop(builder, ir.Constant(_I64, 0), n, init, "probe")
            vals = loop.close(1, [_ctpop(builder, v) for v in loop.vals])
            total = vals[0]
            for v in vals[1:]:
                total = builder.add(total, v)
            s = builder.extract_element(total, ir.Constant(_I32, 0))
            for lane in range(1, lanes):
                s = builder.add(s, builder.extract_element(total, ir.Constant(_I32, lane)))
            return s

        return sig, codegen

    return probe
