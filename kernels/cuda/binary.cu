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
//   binary_gemv_*_ntN   M <= 16 (batched GEMV): A is the m16 operand; activations and weights
//                       stream through a shared-memory ring (bulk copies on sm_90, cp.async on
//                       sm_80); K split over 8 warps; .and.popc, the weight row popcounts from
//                       the mma itself (all-ones A rows).
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

#define GEMV_WARPS 8          // warps per block; warp w takes the 64-byte chunk w of each stage
#define GEMV_MAX_M 16
#define GEMV_STAGE_BYTES 512  // bytes of a row per stage (GEMV_WARPS chunks of 64 bytes)
#define GEMV_ROW_BYTES 528    // padded shared-memory row: stride 16 mod 128, conflict-free ldmatrix
#define GEMV_STAGES 4         // stages in flight per block (K = 8192 needs 2)

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

// Bulk copies (the copy engine) completing on an mbarrier: sm_90. Below that these trap and the
// host launches only the cp.async loader.
#if __CUDA_ARCH__ >= 900
#define PC_BULK_ARCH 1
#else
#define PC_BULK_ARCH 0
#endif

__device__ __forceinline__ void mbar_init(u32 bar, u32 count) {
#if PC_BULK_ARCH
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
#else
  __trap();
#endif
}

__device__ __forceinline__ void mbar_fence_init() {
#if PC_BULK_ARCH
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void mbar_arrive_expect_tx(u32 bar, u32 bytes) {
#if PC_BULK_ARCH
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
#else
  __trap();
#endif
}

__device__ __forceinline__ void mbar_wait(u32 bar, u32 parity) {
#if PC_BULK_ARCH
  asm volatile(
      "{\n"
      ".reg .pred p;\n"
      "WAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 p, [%0], %1;\n"
      "@!p bra WAIT;\n"
      "}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
#else
  __trap();
#endif
}

__device__ __forceinline__ void bulk_copy(u32 dst, const void* src, u32 bytes, u32 bar) {
#if PC_BULK_ARCH
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::
          "r"(dst),
      "l"(src), "r"(bytes), "r"(bar)
      : "memory");
#else
  __trap();
#endif
}

// Orders this thread's earlier generic-proxy shared-memory accesses before later bulk copies.
__device__ __forceinline__ void fence_proxy_async() {
#if PC_BULK_ARCH
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
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

// Batched GEMV, M <= 16 (needs sm_80; the bulk-copy loader needs sm_90). Block: NT n8 tiles
// (8 NT weight rows) x all of K. K goes through shared memory in stages of GEMV_STAGE_BYTES of
// each row, GEMV_STAGES deep (K = 8192 is two stages, all requested at the start): a stage holds
// the 16 activation rows, then the 8 NT weight rows, each padded to GEMV_ROW_BYTES so that the
// 8 rows of an ldmatrix lie in 8 distinct 16-byte bank groups. Two loaders fill a stage:
//   BULK  (sm_90) one cp.async.bulk per row (the copy engine), completing on an mbarrier;
//   async (sm_80) 16-byte cp.async per thread, each warp instruction one contiguous 512 bytes.
// Warp w multiplies the 64-byte chunk w of every stage: A fragments by ldmatrix (one x4 covers
// both k256 steps when M <= 8), one ldmatrix.x4 and two mma.m16n8k256.and.popc per n8 tile.
// The identity C = k - 2 (pa + pb) + 4 popc(a & b) needs the row popcounts; the weights' pb comes
// out of the mma itself: A rows M..15 are all ones (never copied), so product row 15 is popc(b).
// At M = 16 there is no spare row and a second mma per step multiplies by an all-ones A.
// Each warp folds its partial popcounts into 4 c - 2 pa - 2 pb, so the cross-warp reduction
// (through the ring's shared memory) is a plain sum: C = k + sum over warps.
template <int NT, bool BULK>
__device__ __forceinline__ void binary_gemv_tc(const u64* __restrict__ A,
                                               const u64* __restrict__ B, int M, int N, int W,
                                               int k, int* __restrict__ C) {
  constexpr int ROWS = GEMV_MAX_M + 8 * NT;
  constexpr u32 SLOT = ROWS * GEMV_ROW_BYTES;
  constexpr int PIECES = GEMV_STAGE_BYTES / 16;  // 16-byte pieces of a row per stage
  constexpr int THREADS = GEMV_WARPS * 32;
  extern __shared__ __align__(128) unsigned char smem[];
  __shared__ __align__(8) u64 bars[GEMV_STAGES];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int n0 = blockIdx.x * 8 * NT, nrows = min(8 * NT, N - n0);
  const int row_bytes = W * 8;
  const int nst = (row_bytes + GEMV_STAGE_BYTES - 1) / GEMV_STAGE_BYTES;
  const int slots = min(nst, GEMV_STAGES);
  const u32 sbase = smem_u32(smem), bar0 = smem_u32(bars);
  const unsigned char* Ab = (const unsigned char*)A;
  const unsigned char* Bb = (const unsigned char*)B + (size_t)n0 * row_bytes;

  // A rows M..15 of every slot: all ones (rows 8..15 come from registers when M <= 8)
  const int fill_rows = M > 8 ? GEMV_MAX_M - M : 0;
  for (int i = tid; i < slots * fill_rows * PIECES; i += THREADS) {
    const int slot = i / (fill_rows * PIECES), rest = i % (fill_rows * PIECES);
    *(uint4*)(smem + slot * SLOT + (M + rest / PIECES) * GEMV_ROW_BYTES + (rest % PIECES) * 16) =
        make_uint4(~0u, ~0u, ~0u, ~0u);
  }

  auto issue = [&](int s) {  // stage s into slot s % GEMV_STAGES
    const u32 dst = sbase + (s % GEMV_STAGES) * SLOT;
    const int cb = min(GEMV_STAGE_BYTES, row_bytes - s * GEMV_STAGE_BYTES);
    const size_t off = (size_t)s * GEMV_STAGE_BYTES;
    if (BULK) {
      const u32 bar = bar0 + 8 * (s % GEMV_STAGES);
      if (tid == 0) mbar_arrive_expect_tx(bar, (u32)((M + nrows) * cb));
      const bool a = tid < M, b = tid >= GEMV_MAX_M && tid < GEMV_MAX_M + nrows;
      if (a || b) {
        const unsigned char* src = a ? Ab + (size_t)tid * row_bytes
                                     : Bb + (size_t)(tid - GEMV_MAX_M) * row_bytes;
        bulk_copy(dst + tid * GEMV_ROW_BYTES, src + off, cb, bar);
      }
    } else {
#pragma unroll
      for (int j = 0; j < ROWS * PIECES / THREADS; ++j) {
        const int i = tid + j * THREADS, r = i / PIECES, p = (i % PIECES) * 16;
        const bool ok = p < cb && (r < GEMV_MAX_M ? r < M : r - GEMV_MAX_M < nrows);
        const unsigned char* src = r < GEMV_MAX_M ? Ab + (size_t)min(r, M - 1) * row_bytes
                                                  : Bb + (size_t)min(r - GEMV_MAX_M, nrows - 1) * row_bytes;
        if (ok) cp_async16(dst + r * GEMV_ROW_BYTES + p, src + off + p, 16);
      }
      cp_async_commit();
    }
  };

  if (BULK) {
    if (tid == 0) {
#pragma unroll
      for (int q = 0; q < GEMV_STAGES; ++q) mbar_init(bar0 + 8 * q, 1);
      mbar_fence_init();
    }
    __syncthreads();  // barriers initialised, all-ones rows written
  }
#pragma unroll
  for (int s = 0; s < GEMV_STAGES; ++s) {
    if (s < nst) issue(s);
    else if (!BULK) cp_async_commit();  // keep one group per stage
  }

  const int lr = lane & 7, lj = lane >> 3, g = lane >> 2, t4 = lane & 3;
  const u32 ones[4] = {~0u, ~0u, ~0u, ~0u};
  int c[NT][4], cq[NT][4], pa0 = 0, pa1 = 0;
#pragma unroll
  for (int t = 0; t < NT; ++t)
#pragma unroll
    for (int e = 0; e < 4; ++e) c[t][e] = cq[t][e] = 0;

  for (int s = 0; s < nst; ++s) {
    const int q = s % GEMV_STAGES;
    if (BULK) {
      mbar_wait(bar0 + 8 * q, (s / GEMV_STAGES) & 1);
    } else {
      cp_async_wait<GEMV_STAGES - 1>();
      __syncthreads();  // every thread's pieces of stage s have landed
    }
    if (warp * 64 < row_bytes - s * GEMV_STAGE_BYTES) {
      const u32 base = sbase + q * SLOT + warp * 64;
      u32 a[2][4];
      if (M > 8) {  // matrices: rows 0-7 / 8-15 at byte 0, rows 0-7 / 8-15 at byte 16 (+32)
        const u32 addr = base + (lr + ((lj & 1) << 3)) * GEMV_ROW_BYTES + ((lj >> 1) << 4);
        ldmatrix_x4(addr, a[0][0], a[0][1], a[0][2], a[0][3]);
        ldmatrix_x4(addr + 32, a[1][0], a[1][1], a[1][2], a[1][3]);
      } else {  // rows 0-7 at bytes 0, 16, 32, 48; rows 8-15 all ones
        ldmatrix_x4(base + lr * GEMV_ROW_BYTES + (lj << 4), a[0][0], a[0][2], a[1][0], a[1][2]);
        a[0][1] = a[0][3] = a[1][1] = a[1][3] = ~0u;
      }
      pa0 += __popc(a[0][0]) + __popc(a[0][2]) + __popc(a[1][0]) + __popc(a[1][2]);
      pa1 += __popc(a[0][1]) + __popc(a[0][3]) + __popc(a[1][1]) + __popc(a[1][3]);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        u32 b[4];
        ldmatrix_x4(base + (GEMV_MAX_M + 8 * t + lr) * GEMV_ROW_BYTES + (lj << 4), b[0], b[1],
                    b[2], b[3]);
        bmma<false>(c[t], a[0], b[0], b[1]);
        bmma<false>(c[t], a[1], b[2], b[3]);
        if (M == GEMV_MAX_M) {
          bmma<false>(cq[t], ones, b[0], b[1]);
          bmma<false>(cq[t], ones, b[2], b[3]);
        }
      }
    }
    if (s + GEMV_STAGES < nst) {
      __syncthreads();  // everyone is done with slot q
      if (BULK) fence_proxy_async();
      issue(s + GEMV_STAGES);
    } else if (!BULK) {
      cp_async_commit();
    }
  }

  // this warp's share of 4 c - 2 pa - 2 pb; pa summed over the 4 threads of a group
#pragma unroll
  for (int o = 1; o < 4; o <<= 1) {
    pa0 += __shfl_xor_sync(0xffffffffu, pa0, o);
    pa1 += __shfl_xor_sync(0xffffffffu, pa1, o);
  }
  constexpr int RS = 8 * NT + 8;  // ints per row of a warp's partials (32 bytes of padding)
  int* red = (int*)smem;          // [GEMV_WARPS][16][RS], over the ring (all stages consumed)
  __syncthreads();
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    int pb[2];
#pragma unroll
    for (int e = 0; e < 2; ++e)  // pb of columns 2 t4 + e: product row 15 (lanes g = 7) or cq
      pb[e] = M < GEMV_MAX_M ? __shfl_sync(0xffffffffu, c[t][2 + e], 28 + t4) : cq[t][e];
    int* p = red + (warp * GEMV_MAX_M + g) * RS + 8 * t + 2 * t4;
    if (g < M)
      *(int2*)p = make_int2(4 * c[t][0] - 2 * (pa0 + pb[0]), 4 * c[t][1] - 2 * (pa0 + pb[1]));
    if (g + 8 < M)
      *(int2*)(p + 8 * RS) =
          make_int2(4 * c[t][2] - 2 * (pa1 + pb[0]), 4 * c[t][3] - 2 * (pa1 + pb[1]));
  }
  __syncthreads();
  // C = k + sum over warps; a thread sums 4 consecutive columns of one row
  for (int i = tid; i < M * 2 * NT; i += THREADS) {
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

#define PC_GEMV_KERNEL(NAME, NT, BULK)                                                         \
  extern "C" __global__ void __launch_bounds__(GEMV_WARPS * 32)                                \
      NAME(const u64* __restrict__ A, const u64* __restrict__ B, int M, int N, int W, int k,   \
           int* __restrict__ C) {                                                              \
    binary_gemv_tc<NT, BULK>(A, B, M, N, W, k, C);                                             \
  }
PC_GEMV_KERNEL(binary_gemv_async_nt2, 2, false)
PC_GEMV_KERNEL(binary_gemv_async_nt4, 4, false)
PC_GEMV_KERNEL(binary_gemv_async_nt8, 8, false)
PC_GEMV_KERNEL(binary_gemv_bulk_nt2, 2, true)
PC_GEMV_KERNEL(binary_gemv_bulk_nt4, 4, true)
PC_GEMV_KERNEL(binary_gemv_bulk_nt8, 8, true)

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
