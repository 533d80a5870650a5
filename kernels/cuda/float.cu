// Shift and Euclid GEMMs in float32 on CUDA cores.
//
//   shift_gemm:  C[m][n] = sum_k X[m][k] * S[n][k] * 2^E[n][k]   (S, E int8; S in {-1, 0, 1})
//   euclid_gemm: C[m][n] = -sum_k (X[m][k] - Wt[n][k])^2          (direct differences)
//
// X is (M x K) float32, S/E/Wt are (N x K), C is (M x N) float32, all row-major. Shift weights
// are decoded exactly (ldexpf) while the B tile is staged into shared memory, so no float weight
// matrix is ever written to device memory. Tiling: 64 x 64 outputs per block, 256 threads with
// 4 x 4 outputs each (rows ty + 16i, columns tx + 16j), K in shared-memory stages of 16; the
// tiles are stored k-major and padded by 4 floats. Constants are mirrored in launch.py.

#define FG_TILE 64
#define FG_KSTEP 16
#define FG_THREADS 256
#define FG_PAD 4

template <bool SHIFT>
__device__ __forceinline__ void float_gemm(const float* __restrict__ X,
                                           const signed char* __restrict__ S,
                                           const signed char* __restrict__ E,
                                           const float* __restrict__ Wt, int M, int N, int K,
                                           float* __restrict__ C) {
  __shared__ float As[FG_KSTEP][FG_TILE + FG_PAD];
  __shared__ float Bs[FG_KSTEP][FG_TILE + FG_PAD];
  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;
  const int bm = blockIdx.y * FG_TILE, bn = blockIdx.x * FG_TILE;
  float acc[4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;

  for (int k0 = 0; k0 < K; k0 += FG_KSTEP) {
#pragma unroll
    for (int i = 0; i < FG_TILE * FG_KSTEP / FG_THREADS; ++i) {
      const int idx = tid + i * FG_THREADS;
      const int row = idx / FG_KSTEP, kk = idx % FG_KSTEP;
      const int kg = k0 + kk;
      const bool kin = kg < K;
      As[kk][row] = (bm + row < M && kin) ? X[(size_t)(bm + row) * K + kg] : 0.0f;
      float b = 0.0f;
      if (bn + row < N && kin) {
        const size_t o = (size_t)(bn + row) * K + kg;
        if (SHIFT) {
          const int s = S[o];
          b = s == 0 ? 0.0f : ldexpf(s > 0 ? 1.0f : -1.0f, (int)E[o]);
        } else {
          b = Wt[o];
        }
      }
      Bs[kk][row] = b;
    }
    __syncthreads();
    // k past K was staged as 0 in both tiles: it adds 0 * 0 (shift) or -(0 - 0)^2 (Euclid)
#pragma unroll
    for (int kk = 0; kk < FG_KSTEP; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = As[kk][ty + 16 * i];
        b[i] = Bs[kk][tx + 16 * i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          if (SHIFT) {
            acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
          } else {
            const float d = a[i] - b[j];
            acc[i][j] = fmaf(-d, d, acc[i][j]);
          }
        }
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int row = bm + ty + 16 * i, col = bn + tx + 16 * j;
      if (row < M && col < N) C[(size_t)row * N + col] = acc[i][j];
    }
}

extern "C" __global__ void __launch_bounds__(FG_THREADS)
    shift_gemm(const float* __restrict__ X, const signed char* __restrict__ S,
               const signed char* __restrict__ E, int M, int N, int K, float* __restrict__ C) {
  float_gemm<true>(X, S, E, nullptr, M, N, K, C);
}

extern "C" __global__ void __launch_bounds__(FG_THREADS)
    euclid_gemm(const float* __restrict__ X, const float* __restrict__ Wt, int M, int N, int K,
                float* __restrict__ C) {
  float_gemm<false>(X, nullptr, nullptr, Wt, M, N, K, C);
}
