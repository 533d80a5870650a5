// Binary (+-1) GEMM on packed sign bits: C[m][n] = k - 2 * popcount(A[m] xor B[n]).
//
// Layout: A is (M x W) and B is (N x W) uint64 words, row-major; bit j of word w is element
// 64w + j, a set bit is -1, padding bits past k are 0. C is (M x N) int32, row-major.
//
// Kernels (extern "C", compiled by NVRTC through CuPy, or by nvcc -ptx in the tests):
//   binary_gemm_tc_and  tensor cores, mma.m16n8k256 .and.popc (native on sm_80 and sm_90);
//                       C = k - 2(pa[m] + pb[n]) + 4 popc(a & b), pa/pb = row popcounts.
//   binary_gemm_tc_xor  the same tiling with .xor.popc: C = k - 2 popc(a ^ b). Native on
//                       sm_80-sm_89; on sm_90 ptxas turns each xor mma into a call to a routine
//                       with two AND.POPC BMMAs. Kept to measure that (benchmarks, algo="tc_xor").
//   binary_gemv_tc      M <= 16 (batched GEMV): A is the m16 operand, weights stream through
//                       once with 16-byte loads straight into mma fragments; K split over 8
//                       warps; .and.popc, every row popcount from more .and mma against all-ones
//                       operands (no __popc).
//   binary_gemm_simt    CUDA-core __popcll GEMM, 64x64 tiles (any GPU; the fallback).
//   row_popcount        pa / pb for the .and path: one warp per row.
//   binary_mma_peak_*   throughput probe (benchmarks only): chains of independent mma on
//                       registers, no memory traffic -- the instruction ceiling of the GEMM.
//
// The tensor-core kernels need W to be a multiple of 8 words (64 bytes); the host pads (with
// zero words, which change nothing). The tile constants below are mirrored in launch.py
// (tests/kernels/test_launch.py checks that they agree).

typedef unsigned long long u64;
typedef unsigned int u32;

#define TC_BM 128          // block tile rows (A)
#define TC_BN 128          // block tile rows (B)
#define TC_KBYTES 64       // bytes of a row per pipeline stage (512 bits, two k256 steps)
#define TC_ROW_BYTES 80    // padded shared-memory row: conflict-free ldmatrix (20-word stride)
#define TC_STAGES 3        // cp.async pipeline depth
#define TC_THREADS 128     // 4 warps, 2 x 2, each a 64 x 64 warp tile

#define GEMV_WARPS 8       // warps per block splitting K
#define GEMV_MAX_M 16
#define GEMV_NTILES 2      // n8 tiles (8 weight rows each) per block

#define SIMT_TILE 64
#define SIMT_KWORDS 8
#define SIMT_THREADS 256

#define POPC_THREADS 256   // row_popcount: 8 rows (warps) per block

__device__ __forceinline__ u32 smem_u32(const void* p) {
  return (u32)__cvta_generic_to_shared(p);
}

// The tensor-core kernels need sm_80 (cp.async, mma.m16n8k256); below that these helpers trap
// and the host launches only binary_gemm_simt, so the module still compiles for any target.
#if __CUDA_ARCH__ >= 800
#define PC_TC_ARCH 1
#else
#define PC_TC_ARCH 0
#endif

__device__ __forceinline__ void cp_async16(u32 dst, const void* src, int src_bytes) {
#if PC_TC_ARCH
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
               "r"(src_bytes)
               : "memory");
#else
  __trap();
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if PC_TC_ARCH
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if PC_TC_ARCH
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

__device__ __forceinline__ void ldmatrix_x4(u32 addr, u32& r0, u32& r1, u32& r2, u32& r3) {
#if PC_TC_ARCH
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
               : "r"(addr));
#else
  r0 = r1 = r2 = r3 = 0u;
  __trap();
#endif
}

// D = C + popc(A op B) for one 16 x 8 x 256 bit tile. a: 4 regs, b0/b1: 2 regs, c: 4 accumulators.
template <bool XOR>
__device__ __forceinline__ void bmma(int* c, const u32* a, u32 b0, u32 b1) {
#if PC_TC_ARCH
  if (XOR) {
    asm("mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.xor.popc "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k256.row.col.s32.b1.b1.s32.and.popc "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
#else
  __trap();
#endif
}

// Block tile TC_BM x TC_BN, K in stages of 512 bits through a TC_STAGES-deep cp.async ring.
// Fragments come from shared memory by ldmatrix: an 8x8 b16 matrix is 8 rows x 16 bytes = 8 rows
// x 128 bits, and thread (g = lane/4, t = lane%4) receives row g, bits 32t..32t+31 -- exactly the
// b1 fragment of mma.m16n8k256 (A: a0 rows 0-7 bits 0-127, a1 rows 8-15, a2/a3 bits 128-255;
// B: b0 bits 0-127, b1 bits 128-255 of column g).
template <bool XOR>
__device__ __forceinline__ void binary_gemm_tc(const u64* __restrict__ A,
                                               const u64* __restrict__ B, int M, int N, int W,
                                               int k, const int* __restrict__ pa,
                                               const int* __restrict__ pb, int* __restrict__ C) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm = warp >> 1, wn = warp & 1;
  const int bm = blockIdx.y * TC_BM, bn = blockIdx.x * TC_BN;
  const int ktiles = W / (TC_KBYTES / 8);
  const size_t row_bytes = (size_t)W * 8;
  const unsigned char* Ab = (const unsigned char*)A;
  const unsigned char* Bb = (const unsigned char*)B;
  const u32 sbase = smem_u32(smem);
  const u32 stage_bytes = (TC_BM + TC_BN) * TC_ROW_BYTES;

  // Each thread copies 4 16-byte chunks of A and 4 of B per stage (128 rows x 4 chunks each).
  auto load_stage = [&](int kt, int slot) {
    const u32 sA = sbase + slot * stage_bytes;
    const u32 sB = sA + TC_BM * TC_ROW_BYTES;
#pragma unroll
    for (int i = 0; i < (TC_BM * TC_KBYTES / 16) / TC_THREADS; ++i) {
      const int idx = tid + i * TC_THREADS;
      const int row = idx >> 2, ch = idx & 3;
      const size_t col = (size_t)kt * TC_KBYTES + ch * 16;
      int gr = bm + row;
      cp_async16(sA + row * TC_ROW_BYTES + ch * 16, Ab + (size_t)min(gr, M - 1) * row_bytes + col,
                 gr < M ? 16 : 0);
      gr = bn + row;
      cp_async16(sB + row * TC_ROW_BYTES + ch * 16, Bb + (size_t)min(gr, N - 1) * row_bytes + col,
                 gr < N ? 16 : 0);
    }
  };

  int acc[4][8][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0;

#pragma unroll
  for (int s = 0; s < TC_STAGES - 1; ++s) {
    if (s < ktiles) load_stage(s, s);
    cp_async_commit();
  }

  const int lj = lane >> 3, lr = lane & 7;
  for (int kt = 0; kt < ktiles; ++kt) {
    cp_async_wait<TC_STAGES - 2>();
    __syncthreads();  // stage kt landed for everyone; everyone is done with stage kt-1's slot
    const int next = kt + TC_STAGES - 1;
    if (next < ktiles) load_stage(next, next % TC_STAGES);
    cp_async_commit();

    const u32 sA = sbase + (kt % TC_STAGES) * stage_bytes;
    const u32 sB = sA + TC_BM * TC_ROW_BYTES;
#pragma unroll
    for (int ks = 0; ks < TC_KBYTES / 32; ++ks) {
      u32 af[4][4], bf[8][2];
#pragma unroll
      for (int mi = 0; mi < 4; ++mi) {
        const int row = wm * 64 + mi * 16 + lr + ((lj & 1) << 3);
        ldmatrix_x4(sA + row * TC_ROW_BYTES + ks * 32 + ((lj >> 1) << 4), af[mi][0], af[mi][1],
                    af[mi][2], af[mi][3]);
      }
#pragma unroll
      for (int nj = 0; nj < 4; ++nj) {
        const int row = wn * 64 + nj * 16 + lr + ((lj >> 1) << 3);
        ldmatrix_x4(sB + row * TC_ROW_BYTES + ks * 32 + ((lj & 1) << 4), bf[2 * nj][0],
                    bf[2 * nj][1], bf[2 * nj + 1][0], bf[2 * nj + 1][1]);
      }
#pragma unroll
      for (int mi = 0; mi < 4; ++mi)
#pragma unroll
        for (int ni = 0; ni < 8; ++ni) bmma<XOR>(acc[mi][ni], af[mi], bf[ni][0], bf[ni][1]);
    }
  }
  cp_async_wait<0>();

  const int g = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int mi = 0; mi < 4; ++mi) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int row = bm + wm * 64 + mi * 16 + g + 8 * h;
      if (row >= M) continue;
      const int prow = XOR ? 0 : pa[row];
#pragma unroll
      for (int ni = 0; ni < 8; ++ni) {
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int col = bn + wn * 64 + ni * 8 + 2 * t4 + e;
          if (col >= N) continue;
          const int v = acc[mi][ni][2 * h + e];
          C[(size_t)row * N + col] = XOR ? k - 2 * v : k - 2 * (prow + pb[col]) + 4 * v;
        }
      }
    }
  }
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
    binary_gemm_tc_and(const u64* __restrict__ A, const u64* __restrict__ B, int M, int N, int W,
                       int k, const int* __restrict__ pa, const int* __restrict__ pb,
                       int* __restrict__ C) {
  binary_gemm_tc<false>(A, B, M, N, W, k, pa, pb, C);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS)
    binary_gemm_tc_xor(const u64* __restrict__ A, const u64* __restrict__ B, int M, int N, int W,
                       int k, int* __restrict__ C) {
  binary_gemm_tc<true>(A, B, M, N, W, k, nullptr, nullptr, C);
}

// Batched GEMV, M <= 16 (needs sm_80 for .and.popc and the L2::256B load). Block: GEMV_NTILES n8
// tiles (8 NT weight rows) x all of K; the 8 warps split K in 64-byte chunks, warp w taking the
// adjacent chunks 2w and 2w + 1 of each pass (a full 128-byte line of each of its rows), both
// chunks' loads issued before either is used (K = 8192 is one pass: everything in flight at
// once). Thread (g, t) loads 16 bytes (words 4t..4t+3 of a chunk) of weight row g of each tile --
// by ld.global.nc.L1::no_allocate.L2::256B, so each L2 miss fetches 256 bytes -- and of
// activation rows g and g + 8. A chunk's 512 bits feed two mma k256 steps with a fixed
// permutation of K -- the same for A and B, so the popcount sums are unchanged:
//   step 0: a = {A_g.x, A_g8.x, A_g.y, A_g8.y}, b = {B.x, B.y};  step 1: .z/.w likewise.
// C = k - 2 (pa[m] + pb[n]) + 4 popc(a & b). Activation rows M..15 are taken as all ones, so for
// M < 16 product row 15 is popc(b) = pb; at M = 16 pb comes from one more mma (gemv_use). Each
// warp folds its share into 4 c - 2 pa - 2 pb, and the warps' shares are summed through shared
// memory: C = k + sum.
struct GemvChunk {
  uint4 b[GEMV_NTILES], x0, x1;
};

__device__ __forceinline__ uint4 gemv_weight(const uint4* p) {
  uint4 v;
#if PC_TC_ARCH
  asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
#else
  v = make_uint4(0u, 0u, 0u, 0u);
  __trap();
#endif
  return v;
}

// What thread (g, t4) of a block reads: activation rows g, g + 8 and weight row g of each n8 tile
// (pointers at the thread's 16 bytes of chunk 0, clamped to real rows; the flags say which are).
struct GemvRows {
  const uint4 *a0p, *a1p, *bp[GEMV_NTILES];
  bool a0ok, a1ok, bok[GEMV_NTILES];
  int n0, nrows, nchunks;
};

__device__ __forceinline__ GemvRows gemv_rows(const uint4* A, const uint4* B, int M, int N,
                                              int W) {
  constexpr int NT = GEMV_NTILES;
  const int g = (threadIdx.x & 31) >> 2, t4 = threadIdx.x & 3;
  const size_t rowq = (size_t)W / 2;  // uint4 per row
  GemvRows r;
  r.n0 = blockIdx.x * (8 * NT);
  r.nrows = min(8 * NT, N - r.n0);
  r.nchunks = W / 8;
  r.a0p = A + (size_t)min(g, M - 1) * rowq + t4;
  r.a1p = A + (size_t)min(g + 8, M - 1) * rowq + t4;
  r.a0ok = g < M;
  r.a1ok = g + 8 < M;
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    r.bok[t] = 8 * t + g < r.nrows;
    r.bp[t] = B + (size_t)(r.n0 + min(8 * t + g, r.nrows - 1)) * rowq + t4;
  }
  return r;
}

// chunk q / 4 of the thread's rows (rows that are not real: weights zero, activations all ones)
__device__ __forceinline__ void gemv_load(GemvChunk& v, const GemvRows& r, size_t q) {
  const uint4 zero = make_uint4(0u, 0u, 0u, 0u), ones = make_uint4(~0u, ~0u, ~0u, ~0u);
#pragma unroll
  for (int t = 0; t < GEMV_NTILES; ++t) v.b[t] = r.bok[t] ? gemv_weight(r.bp[t] + q) : zero;
  v.x0 = r.a0ok ? __ldg(r.a0p + q) : ones;
  v.x1 = r.a1ok ? __ldg(r.a1p + q) : ones;
}

// A block's pass over K: warp w takes the adjacent chunks 2w and 2w + 1 of each pass, loads
// both before either is used, and hands each loaded chunk to use(const GemvChunk&).
template <class Use>
__device__ __forceinline__ void gemv_chunks(const GemvRows& rows, int warp, Use use) {
  for (int base = 0; base < rows.nchunks; base += 2 * GEMV_WARPS) {
    const int ch0 = base + 2 * warp, ch1 = ch0 + 1;
    const bool first = ch0 < rows.nchunks, second = ch1 < rows.nchunks;
    GemvChunk v0, v1;
    if (first) gemv_load(v0, rows, (size_t)ch0 * 4);
    if (second) gemv_load(v1, rows, (size_t)ch1 * 4);
    if (first) use(v0);
    if (second) use(v1);
  }
}

// ints per row of a warp's shares in shared memory: 8 per n8 tile plus 32 bytes of padding
constexpr int GEMV_RS = 8 * GEMV_NTILES + 8;

// C = k + the warps' shares (red: GEMV_WARPS x GEMV_MAX_M rows of GEMV_RS ints, written by every
// warp before the barrier here); a thread sums 4 consecutive columns of one row.
__device__ __forceinline__ void gemv_reduce(const int* red, int M, int N, int k, int n0,
                                            int nrows, int* __restrict__ C) {
  constexpr int NT = GEMV_NTILES, RS = GEMV_RS;
  __syncthreads();
  for (int i = threadIdx.x; i < M * 2 * NT; i += GEMV_WARPS * 32) {
    const int r = i / (2 * NT), col = 4 * (i % (2 * NT));
    int4 s = make_int4(k, k, k, k);
#pragma unroll
    for (int w = 0; w < GEMV_WARPS; ++w) {
      const int4 v = *(const int4*)(red + (w * GEMV_MAX_M + r) * RS + col);
      s.x += v.x;
      s.y += v.y;
      s.z += v.z;
      s.w += v.w;
    }
    int* out = C + (size_t)r * N + n0 + col;
    const int left = nrows - col;
    if (left > 0) out[0] = s.x;
    if (left > 1) out[1] = s.y;
    if (left > 2) out[2] = s.z;
    if (left > 3) out[3] = s.w;
  }
}

// The row popcounts pa (activations) and pb (weights) of the .and identity, by more .and mma
// against an all-ones n8 tile instead of __popc: with the activations as the m16 operand every
// column of the product is pa (each thread gets pa of its rows g, g + 8 without shuffles); at
// M = 16 the two tiles' 16 weight rows are the m16 operand of one more such mma (pb of weight
// rows g, 8 + g). Per warp and k256 step one mma more (two at M = 16) in place of 4 (8) __popc per
// thread: at the sm_90 rates (16 popc per clock and SM, ~0.58 b1 mma per clock and SM) about 4.7x
// fewer SM cycles, spent in the tail after the last load lands. Measured against the __popc and
// the .xor.popc forms on an H100 (docs/benchmarks.md): 1-6 % faster at every batch 1..16.
static_assert(GEMV_NTILES == 2, "the two n8 tiles' weight rows are the m16 operand of pb's mma");

// Per-thread accumulators of a GEMV: c of the product tiles and the products with all ones
// (pa of activation rows g, g + 8 in [0], [2]; pb of weight row g of tile 0, 1 likewise).
struct GemvAcc {
  int c[GEMV_NTILES][4], pa[4], pb[4];
};

__device__ __forceinline__ void gemv_use(const GemvChunk& v, GemvAcc& acc, bool pb_by_mma) {
  const u32 s0[4] = {v.x0.x, v.x1.x, v.x0.y, v.x1.y};
  const u32 s1[4] = {v.x0.z, v.x1.z, v.x0.w, v.x1.w};
  bmma<false>(acc.pa, s0, ~0u, ~0u);
  bmma<false>(acc.pa, s1, ~0u, ~0u);
  if (pb_by_mma) {
    const u32 w0[4] = {v.b[0].x, v.b[1].x, v.b[0].y, v.b[1].y};
    const u32 w1[4] = {v.b[0].z, v.b[1].z, v.b[0].w, v.b[1].w};
    bmma<false>(acc.pb, w0, ~0u, ~0u);
    bmma<false>(acc.pb, w1, ~0u, ~0u);
  }
#pragma unroll
  for (int t = 0; t < GEMV_NTILES; ++t) {
    bmma<false>(acc.c[t], s0, v.b[t].x, v.b[t].y);
    bmma<false>(acc.c[t], s1, v.b[t].z, v.b[t].w);
  }
}

extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32, 8 / GEMV_NTILES)
    binary_gemv_tc(const uint4* __restrict__ A, const uint4* __restrict__ B, int M, int N, int W,
                   int k, int* __restrict__ C) {
  constexpr int NT = GEMV_NTILES, RS = GEMV_RS;
  __shared__ __align__(16) int red[GEMV_WARPS * GEMV_MAX_M * RS];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int g = lane >> 2, t4 = lane & 3;
  const GemvRows rows = gemv_rows(A, B, M, N, W);
  const bool pb_by_mma = M == GEMV_MAX_M;  // no spare all-ones activation row for pb
  GemvAcc acc;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    acc.pa[i] = acc.pb[i] = 0;
#pragma unroll
    for (int t = 0; t < NT; ++t) acc.c[t][i] = 0;
  }

  gemv_chunks(rows, warp, [&](const GemvChunk& v) { gemv_use(v, acc, pb_by_mma); });
  // a warp's share of C - k: 4 c - 2 (pa + pb), the popcounts summed over the group by the mma
  const int pa0 = acc.pa[0], pa1 = acc.pa[2], pb[NT] = {acc.pb[0], acc.pb[2]};
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    int pbc[2];  // pb of this thread's columns 2 t4 + e
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int counted = __shfl_sync(0xffffffffu, pb[t], 4 * (2 * t4 + e));
      const int row15 = __shfl_sync(0xffffffffu, acc.c[t][2 + e], 28 + t4);
      pbc[e] = pb_by_mma ? counted : row15;
    }
    int* p = red + (warp * GEMV_MAX_M + g) * RS + 8 * t + 2 * t4;
    const int* c = acc.c[t];
    if (g < M)
      *(int2*)p = make_int2(4 * c[0] - 2 * (pa0 + pbc[0]), 4 * c[1] - 2 * (pa0 + pbc[1]));
    if (g + 8 < M)
      *(int2*)(p + 8 * RS) =
          make_int2(4 * c[2] - 2 * (pa1 + pbc[0]), 4 * c[3] - 2 * (pa1 + pbc[1]));
  }
  gemv_reduce(red, M, N, k, rows.n0, rows.nrows, C);
}

// CUDA-core fallback: 64 x 64 output tile per block, 16 x 16 threads with 4 x 4 outputs each
// (rows ty + 16i, columns tx + 16j), K in shared-memory stages of 8 words.
extern "C" __global__ void __launch_bounds__(SIMT_THREADS)
    binary_gemm_simt(const u64* __restrict__ A, const u64* __restrict__ B, int M, int N, int W,
                     int k, int* __restrict__ C) {
  __shared__ u64 As[SIMT_KWORDS][SIMT_TILE + 1];
  __shared__ u64 Bs[SIMT_KWORDS][SIMT_TILE + 1];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int bm = blockIdx.y * SIMT_TILE, bn = blockIdx.x * SIMT_TILE;
  int acc[4][4] = {};
  for (int w0 = 0; w0 < W; w0 += SIMT_KWORDS) {
#pragma unroll
    for (int i = 0; i < SIMT_TILE * SIMT_KWORDS / SIMT_THREADS; ++i) {
      const int idx = tid + i * SIMT_THREADS;
      const int row = idx / SIMT_KWORDS, w = idx % SIMT_KWORDS;
      const bool kin = w0 + w < W;
      As[w][row] = (bm + row < M && kin) ? A[(size_t)(bm + row) * W + w0 + w] : 0ull;
      Bs[w][row] = (bn + row < N && kin) ? B[(size_t)(bn + row) * W + w0 + w] : 0ull;
    }
    __syncthreads();
#pragma unroll
    for (int w = 0; w < SIMT_KWORDS; ++w) {
      u64 a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = As[w][ty + 16 * i];
        b[i] = Bs[w][tx + 16 * i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += __popcll(a[i] ^ b[j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int row = bm + ty + 16 * i, col = bn + tx + 16 * j;
      if (row < M && col < N) C[(size_t)row * N + col] = k - 2 * acc[i][j];
    }
}

extern "C" __global__ void __launch_bounds__(POPC_THREADS)
    row_popcount(const u64* __restrict__ X, int R, int W, int* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int row = blockIdx.x * (POPC_THREADS / 32) + (threadIdx.x >> 5);
  if (row >= R) return;
  int s = 0;
  for (int w = lane; w < W; w += 32) s += __popcll(X[(size_t)row * W + w]);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (lane == 0) out[row] = s;
}

// Throughput probe: every warp issues PEAK_CHAINS independent mma chains, `iters` times each.
#define PEAK_CHAINS 8
template <bool XOR>
__device__ __forceinline__ void mma_peak(int iters, int* __restrict__ out) {
  const u32 x = threadIdx.x * 2654435761u + blockIdx.x;
  const u32 a[4] = {x, x ^ 0x5555u, x * 3u, ~x};
  const u32 b0 = x * 7u, b1 = x ^ 0xf0f0f0f0u;
  int c[PEAK_CHAINS][4] = {};
  for (int i = 0; i < iters; ++i) {
#pragma unroll
    for (int j = 0; j < PEAK_CHAINS; ++j) bmma<XOR>(c[j], a, b0, b1);
  }
  int s = 0;
#pragma unroll
  for (int j = 0; j < PEAK_CHAINS; ++j) s += c[j][0] + c[j][1] + c[j][2] + c[j][3];
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

extern "C" __global__ void binary_mma_peak_and(int iters, int* __restrict__ out) {
  mma_peak<false>(iters, out);
}

extern "C" __global__ void binary_mma_peak_xor(int iters, int* __restrict__ out) {
  mma_peak<true>(iters, out);
}
