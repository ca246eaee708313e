using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using static ModelCompiler.Backends.Cuda.Kernels.TensorCorePtx;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>
/// fp16 GEMM on the tensor cores with fp32 accumulation, C[m, n] = Σ_k A[m, k]·W[n, k] (the Linear layout; A and W as
/// packed half pairs along k, C fp32). A 256-thread group (8 warps, 2 along M × 4 along N, 64×32 each) owns a 128×128
/// tile; K advances in slices of 64 through a ring of <c>stages</c> slices in dynamic shared memory filled by
/// <c>cp.async</c> (one slice in flight per stage, one barrier per slice). Rows of a slice are 128 bytes whose 16-byte
/// chunks are XOR-swizzled by the row's low three bits, so that both the cp.async stores and the <c>ldmatrix.x4</c>
/// fragment loads hit eight different bank groups. Blocks are rasterised in bands of eight tile rows so that
/// neighbouring blocks share their A and W slices in L2. M, N multiples of 128; K of 64.
/// On the CPU accelerator (no PTX) each thread computes the same outputs it owns with scalar sums: the portable path CI
/// checks for tile ownership, rasterisation and the epilogue; the tensor-core path is checked on the GPU.
/// </summary>
public static class TensorCoreGemmPipelined
{
    public const int TileM = 128, TileN = 128, Slice = 64, Threads = 256, Band = 8;
    private const int RowBytes = Slice * 2, OperandBytes = TileM * RowBytes, StageBytes = 2 * OperandBytes;

    /// <summary>Dynamic shared memory for a ring of <paramref name="stages"/> slices, in bytes.</summary>
    public static int SharedBytes(int stages) => stages * StageBytes;

    public static KernelConfig Config(int m, int n, int stages) =>
        new(new Index3D(m / TileM * (n / TileN), 1, 1), new Index3D(Threads, 1, 1), SharedMemoryConfig.RequestDynamic<byte>(SharedBytes(stages)));

    /// <summary>Why a shape cannot run on this kernel, or null.</summary>
    public static string? Unsupported(int m, int n, int k) =>
        m % TileM != 0 || n % TileN != 0 || k % Slice != 0 ? $"the pipelined tensor-core GEMM needs M, N multiples of {TileM} and K of {Slice} (got {m}×{n}×{k})" : null;

    /// <param name="a">A as uint[M·K/2]</param>
    /// <param name="w">W as uint[N·K/2]</param>
    /// <param name="aAddress">the device address of a (<see cref="TensorCorePtx.DeviceAddress"/>), for cp.async</param>
    /// <param name="wAddress">the device address of w</param>
    /// <param name="stages">shared-memory ring depth, 2..4 (the launch must request <see cref="SharedBytes"/>)</param>
    public static void Gemm(ArrayView<uint> a, ArrayView<uint> w, ArrayView<float> c, long aAddress, long wAddress, int m, int n, int k, int stages)
    {
        var shared = SharedMemory.GetDynamic<byte>(); // addressed through DynamicSharedBase
        int tid = Group.IdxX, warp = tid >> 5, lane = tid & 31;
        // Band rasterisation: consecutive blocks walk down a band of Band tile rows before moving right.
        int tilesM = m / TileM, tilesN = n / TileN, block = Grid.IdxX;
        int perBand = Band * tilesN, band = block / perBand, first = band * Band;
        int bandRows = Math.Min(tilesM - first, Band), within = block - band * perBand;
        int rowBase = (first + within % bandRows) * TileM, colBase = within / bandRows * TileN;
        int warpRow = (warp & 1) * 64, warpCol = (warp >> 1) * 32;

        Acc c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default;
        Acc c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default;

        if (CudaAsm.IsSupported)
        {
            uint smem = DynamicSharedBase();
            long aBase = aAddress, wBase = wAddress;
            long rowStride = (long)k * 2;
            int slices = k / Slice;
            // This thread's four 16-byte chunks of each operand per slice: rows tid/8 + 32q, chunk tid%8.
            int loadRow = tid >> 3, loadChunk = tid & 7;
            uint loadShared = (uint)(loadRow * RowBytes + ((loadChunk ^ (loadRow & 7)) << 4));
            long aLoad = aBase + (rowBase + loadRow) * rowStride + loadChunk * 16;
            long wLoad = wBase + (colBase + loadRow) * rowStride + loadChunk * 16;
            // ldmatrix rows: A tiles (lanes 0-15 rows, 16-31 the upper k half), W pairs of n8 tiles.
            uint aRow = (uint)((warpRow + (lane & 15)) * RowBytes), aHigh = (uint)(lane >> 4);
            uint wRow = (uint)((warpCol + ((lane >> 4) << 3) + (lane & 7)) * RowBytes), wHigh = (uint)((lane >> 3) & 1);
            uint swizzle = (uint)(lane & 7);

            for (int s = 0; s < stages - 1; s++)
            {
                if (s < slices) LoadSlice(smem + (uint)(s * StageBytes) + loadShared, aLoad + s * RowBytes, wLoad + s * RowBytes, rowStride);
                Commit();
            }
            for (int t = 0; t < slices; t++)
            {
                Wait(stages - 2);
                Group.Barrier();
                int next = t + stages - 1;
                if (next < slices) LoadSlice(smem + (uint)(next % stages * StageBytes) + loadShared, aLoad + (long)next * RowBytes, wLoad + (long)next * RowBytes, rowStride);
                Commit();

                uint aStage = smem + (uint)(t % stages * StageBytes), wStage = aStage + OperandBytes;
                for (uint ks = 0; ks < Slice / 16; ks++)
                {
                    uint aAt = aStage + aRow + (((ks * 2 + aHigh) ^ swizzle) << 4);
                    Reg4 a0 = LoadMatrixX4(aAt), a1 = LoadMatrixX4(aAt + 16 * RowBytes), a2 = LoadMatrixX4(aAt + 32 * RowBytes), a3 = LoadMatrixX4(aAt + 48 * RowBytes);
                    uint wAt = wStage + wRow + (((ks * 2 + wHigh) ^ swizzle) << 4);
                    Reg4 b01 = LoadMatrixX4(wAt), b23 = LoadMatrixX4(wAt + 16 * RowBytes);
                    Mma(ref c00, a0, b01.X0, b01.X1); Mma(ref c01, a0, b01.X2, b01.X3); Mma(ref c02, a0, b23.X0, b23.X1); Mma(ref c03, a0, b23.X2, b23.X3);
                    Mma(ref c10, a1, b01.X0, b01.X1); Mma(ref c11, a1, b01.X2, b01.X3); Mma(ref c12, a1, b23.X0, b23.X1); Mma(ref c13, a1, b23.X2, b23.X3);
                    Mma(ref c20, a2, b01.X0, b01.X1); Mma(ref c21, a2, b01.X2, b01.X3); Mma(ref c22, a2, b23.X0, b23.X1); Mma(ref c23, a2, b23.X2, b23.X3);
                    Mma(ref c30, a3, b01.X0, b01.X1); Mma(ref c31, a3, b01.X2, b01.X3); Mma(ref c32, a3, b23.X0, b23.X1); Mma(ref c33, a3, b23.X2, b23.X3);
                }
            }
            Wait(0);
        }
        else
        {
            int group = lane >> 2, quad = lane & 3;
            int r = rowBase + warpRow + group, col = colBase + warpCol + quad * 2;
            c00 = Portable(a, w, k, r, col); c01 = Portable(a, w, k, r, col + 8); c02 = Portable(a, w, k, r, col + 16); c03 = Portable(a, w, k, r, col + 24);
            c10 = Portable(a, w, k, r + 16, col); c11 = Portable(a, w, k, r + 16, col + 8); c12 = Portable(a, w, k, r + 16, col + 16); c13 = Portable(a, w, k, r + 16, col + 24);
            c20 = Portable(a, w, k, r + 32, col); c21 = Portable(a, w, k, r + 32, col + 8); c22 = Portable(a, w, k, r + 32, col + 16); c23 = Portable(a, w, k, r + 32, col + 24);
            c30 = Portable(a, w, k, r + 48, col); c31 = Portable(a, w, k, r + 48, col + 8); c32 = Portable(a, w, k, r + 48, col + 16); c33 = Portable(a, w, k, r + 48, col + 24);
        }

        int row0 = rowBase + warpRow + (lane >> 2), col0 = colBase + warpCol + (lane & 3) * 2;
        Store(c, n, row0, col0, c00); Store(c, n, row0, col0 + 8, c01); Store(c, n, row0, col0 + 16, c02); Store(c, n, row0, col0 + 24, c03);
        Store(c, n, row0 + 16, col0, c10); Store(c, n, row0 + 16, col0 + 8, c11); Store(c, n, row0 + 16, col0 + 16, c12); Store(c, n, row0 + 16, col0 + 24, c13);
        Store(c, n, row0 + 32, col0, c20); Store(c, n, row0 + 32, col0 + 8, c21); Store(c, n, row0 + 32, col0 + 16, c22); Store(c, n, row0 + 32, col0 + 24, c23);
        Store(c, n, row0 + 48, col0, c30); Store(c, n, row0 + 48, col0 + 8, c31); Store(c, n, row0 + 48, col0 + 16, c32); Store(c, n, row0 + 48, col0 + 24, c33);
    }

    /// <summary>Rows loadRow + 32q (q = 0..3) of one slice of A and of W.</summary>
    private static void LoadSlice(uint shared, long aGlobal, long wGlobal, long rowStride)
    {
        for (int q = 0; q < 4; q++)
        {
            CopyAsync16(shared + (uint)(q * 32 * RowBytes), aGlobal + q * 32 * rowStride);
            CopyAsync16(shared + (uint)(OperandBytes + q * 32 * RowBytes), wGlobal + q * 32 * rowStride);
        }
    }

    /// <summary>The four outputs an m16n8 accumulator holds at (row, col), (row, col+1), (row+8, col), (row+8, col+1).</summary>
    private static Acc Portable(ArrayView<uint> a, ArrayView<uint> w, int k, int row, int col) => new()
    {
        C0 = Dot(a, w, k, row, col), C1 = Dot(a, w, k, row, col + 1),
        C2 = Dot(a, w, k, row + 8, col), C3 = Dot(a, w, k, row + 8, col + 1),
    };

    private static float Dot(ArrayView<uint> a, ArrayView<uint> w, int k, int row, int col)
    {
        float sum = 0;
        long ao = (long)row * (k / 2), wo = (long)col * (k / 2);
        for (int i = 0; i < k / 2; i++)
        {
            uint x = a[ao + i], y = w[wo + i];
            sum += HalfBits.Low(x) * HalfBits.Low(y) + HalfBits.High(x) * HalfBits.High(y);
        }
        return sum;
    }

    private static void Store(ArrayView<float> c, int n, int row, int col, Acc f)
    {
        c[(long)row * n + col] = f.C0;
        c[(long)row * n + col + 1] = f.C1;
        c[(long)(row + 8) * n + col] = f.C2;
        c[(long)(row + 8) * n + col + 1] = f.C3;
    }
}
