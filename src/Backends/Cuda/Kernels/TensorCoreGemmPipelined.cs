using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using static ModelCompiler.Backends.Cuda.Kernels.TensorCorePtx;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>
/// fp16 GEMM on the tensor cores with fp32 accumulation, C[m, n] = Σ_k A[m, k]·W[n, k] (the Linear layout; A and W as
/// packed half pairs along k, C fp32). A group owns a 128 × <c>tileN</c> tile (tileN 128 or 256) with 2 × tileN/64 warps,
/// each computing 64×64 outputs (16 m16n8 accumulators per m16 row, 128 floats per lane). K advances in slices of 64
/// through a ring of <c>stages</c> slices in dynamic shared memory filled by <c>cp.async</c> (one barrier per slice).
/// Rows of a slice are 128 bytes whose 16-byte chunks are XOR-swizzled by the row's low three bits, so that both the
/// cp.async stores and the <c>ldmatrix.x4</c> fragment loads hit eight different bank groups. Blocks are rasterised in
/// bands of eight tile rows so that neighbouring blocks share their A and W slices in L2. M a multiple of 128, N of
/// tileN, K of 64.
/// On the CPU accelerator (no PTX) each thread computes the same outputs it owns with scalar sums: the portable path CI
/// checks for tile ownership, rasterisation and the epilogue; the tensor-core path is checked on the GPU.
/// </summary>
public static class TensorCoreGemmPipelined
{
    public const int TileM = 128, Slice = 64, Band = 8;
    private const int RowBytes = Slice * 2, ABytes = TileM * RowBytes;

    /// <summary>Threads of a group for a tile width (two warps along M, one per 64 columns).</summary>
    public static int Threads(int tileN) => 2 * (tileN / 64) * 32;

    /// <summary>Dynamic shared memory for a ring of <paramref name="stages"/> slices, in bytes.</summary>
    public static int SharedBytes(int stages, int tileN) => stages * (TileM + tileN) * RowBytes;

    public static KernelConfig Config(int m, int n, int stages, int tileN) =>
        new(new Index3D(m / TileM * (n / tileN), 1, 1), new Index3D(Threads(tileN), 1, 1), SharedMemoryConfig.RequestDynamic<byte>(SharedBytes(stages, tileN)));

    /// <summary>Why a shape cannot run on this kernel, or null.</summary>
    public static string? Unsupported(int m, int n, int k, int tileN) =>
        m % TileM != 0 || n % tileN != 0 || k % Slice != 0 ? $"the pipelined tensor-core GEMM needs M a multiple of {TileM}, N of {tileN} and K of {Slice} (got {m}×{n}×{k})" : null;

    /// <param name="a">A as uint[M·K/2]</param>
    /// <param name="w">W as uint[N·K/2]</param>
    /// <param name="aAddress">the device address of a (<see cref="TensorCorePtx.DeviceAddress"/>), for cp.async</param>
    /// <param name="wAddress">the device address of w</param>
    /// <param name="stages">shared-memory ring depth, 2..5 (the launch must request <see cref="SharedBytes"/>)</param>
    /// <param name="tileN">columns per group, 128 or 256 (the launch must use <see cref="Threads"/>)</param>
    public static void Gemm(ArrayView<uint> a, ArrayView<uint> w, ArrayView<float> c, long aAddress, long wAddress, int m, int n, int k, int stages, int tileN)
    {
        var shared = SharedMemory.GetDynamic<byte>(); // addressed through DynamicSharedBase
        int tid = Group.IdxX, warp = tid >> 5, lane = tid & 31, threads = Group.DimX;
        // Band rasterisation: consecutive blocks walk down a band of Band tile rows before moving right.
        int tilesM = m / TileM, tilesN = n / tileN, block = Grid.IdxX;
        int perBand = Band * tilesN, band = block / perBand, first = band * Band;
        int bandRows = Math.Min(tilesM - first, Band), within = block - band * perBand;
        int rowBase = (first + within % bandRows) * TileM, colBase = within / bandRows * tileN;
        int warpRow = (warp & 1) * 64, warpCol = (warp >> 1) * 64;

        Acc8 r0 = default, r1 = default, r2 = default, r3 = default;
        if (CudaAsm.IsSupported)
        {
            uint smem = DynamicSharedBase();
            int stageBytes = (TileM + tileN) * RowBytes;
            long rowStride = (long)k * 2;
            int slices = k / Slice;
            // This thread's 16-byte chunks of a slice: rows tid/8 + (threads/8)·q, chunk tid%8 (A rows, then W rows).
            int loadRow = tid >> 3, loadChunk = tid & 7, rowStep = threads >> 3;
            uint loadShared = (uint)(loadRow * RowBytes + ((loadChunk ^ (loadRow & 7)) << 4));
            long aLoad = aAddress + (rowBase + loadRow) * rowStride + loadChunk * 16;
            long wLoad = wAddress + (colBase + loadRow) * rowStride + loadChunk * 16;
            // ldmatrix rows: A tiles (lanes 0-15 rows, 16-31 the upper k half), W pairs of n8 tiles.
            uint aRow = (uint)((warpRow + (lane & 15)) * RowBytes), aHigh = (uint)(lane >> 4);
            uint wRow = (uint)((TileM + warpCol + ((lane >> 4) << 3) + (lane & 7)) * RowBytes), wHigh = (uint)((lane >> 3) & 1);
            uint swizzle = (uint)(lane & 7);

            // Ring offsets advance by compare-and-wrap (no integer division in the loop).
            uint stageBytesU = (uint)stageBytes, ringBytes = (uint)(stages * stageBytes), writeOffset = 0;
            for (int s = 0; s < stages - 1; s++)
            {
                if (s < slices) LoadSlice(smem + writeOffset + loadShared, aLoad + s * RowBytes, wLoad + s * RowBytes, rowStride, rowStep);
                Commit();
                writeOffset += stageBytesU;
            }
            uint readOffset = 0;
            for (int t = 0; t < slices; t++)
            {
                Wait(stages - 2);
                Group.Barrier();
                int next = t + stages - 1;
                if (next < slices) LoadSlice(smem + writeOffset + loadShared, aLoad + (long)next * RowBytes, wLoad + (long)next * RowBytes, rowStride, rowStep);
                Commit();
                writeOffset = writeOffset + stageBytesU == ringBytes ? 0 : writeOffset + stageBytesU;

                // Fragments of the next k-step load while the tensor cores work on this one.
                uint aAt = smem + readOffset + aRow, wAt = smem + readOffset + wRow;
                Fragments f0 = LoadFragments(aAt, wAt, (0 + aHigh) ^ swizzle, (0 + wHigh) ^ swizzle);
                Fragments f1 = LoadFragments(aAt, wAt, (2 + aHigh) ^ swizzle, (2 + wHigh) ^ swizzle);
                MmaTile(ref r0, ref r1, ref r2, ref r3, f0);
                Fragments f2 = LoadFragments(aAt, wAt, (4 + aHigh) ^ swizzle, (4 + wHigh) ^ swizzle);
                MmaTile(ref r0, ref r1, ref r2, ref r3, f1);
                Fragments f3 = LoadFragments(aAt, wAt, (6 + aHigh) ^ swizzle, (6 + wHigh) ^ swizzle);
                MmaTile(ref r0, ref r1, ref r2, ref r3, f2);
                MmaTile(ref r0, ref r1, ref r2, ref r3, f3);
                readOffset = readOffset + stageBytesU == ringBytes ? 0 : readOffset + stageBytesU;
            }
            Wait(0);
        }
        else
        {
            int r = rowBase + warpRow + (lane >> 2), col = colBase + warpCol + (lane & 3) * 2;
            r0 = PortableRow(a, w, k, r, col); r1 = PortableRow(a, w, k, r + 16, col);
            r2 = PortableRow(a, w, k, r + 32, col); r3 = PortableRow(a, w, k, r + 48, col);
        }

        int row0 = rowBase + warpRow + (lane >> 2), col0 = colBase + warpCol + (lane & 3) * 2;
        StoreRow(c, n, row0, col0, r0); StoreRow(c, n, row0 + 16, col0, r1);
        StoreRow(c, n, row0 + 32, col0, r2); StoreRow(c, n, row0 + 48, col0, r3);
    }

    /// <summary>The A (four m16 tiles) and W (eight n8 tiles) fragments of one k16 step of the warp's 64×64 tile.</summary>
    private struct Fragments
    {
        public Reg4 A0, A1, A2, A3, B01, B23, B45, B67;
    }

    private static Fragments LoadFragments(uint aAt, uint wAt, uint aChunk, uint wChunk)
    {
        uint ao = aAt + (aChunk << 4), wo = wAt + (wChunk << 4);
        return new Fragments
        {
            A0 = LoadMatrixX4(ao), A1 = LoadMatrixX4(ao + 16 * RowBytes), A2 = LoadMatrixX4(ao + 32 * RowBytes), A3 = LoadMatrixX4(ao + 48 * RowBytes),
            B01 = LoadMatrixX4(wo), B23 = LoadMatrixX4(wo + 16 * RowBytes), B45 = LoadMatrixX4(wo + 32 * RowBytes), B67 = LoadMatrixX4(wo + 48 * RowBytes),
        };
    }

    /// <summary>One k16 step of the warp's 64×64 tile: 32 mma.</summary>
    private static void MmaTile(ref Acc8 r0, ref Acc8 r1, ref Acc8 r2, ref Acc8 r3, Fragments f)
    {
        MmaRow(ref r0, f.A0, f.B01, f.B23, f.B45, f.B67); MmaRow(ref r1, f.A1, f.B01, f.B23, f.B45, f.B67);
        MmaRow(ref r2, f.A2, f.B01, f.B23, f.B45, f.B67); MmaRow(ref r3, f.A3, f.B01, f.B23, f.B45, f.B67);
    }

    private static void MmaRow(ref Acc8 r, Reg4 a, Reg4 b01, Reg4 b23, Reg4 b45, Reg4 b67)
    {
        Mma(ref r.T0, a, b01.X0, b01.X1); Mma(ref r.T1, a, b01.X2, b01.X3);
        Mma(ref r.T2, a, b23.X0, b23.X1); Mma(ref r.T3, a, b23.X2, b23.X3);
        Mma(ref r.T4, a, b45.X0, b45.X1); Mma(ref r.T5, a, b45.X2, b45.X3);
        Mma(ref r.T6, a, b67.X0, b67.X1); Mma(ref r.T7, a, b67.X2, b67.X3);
    }

    /// <summary>
    /// This thread's chunks of one slice, unrolled: A rows loadRow + rowStep·q (rowStep 16 with 4 warps: eight rows;
    /// 32 with 8 warps: four), then eight W rows (tileN = 8·rowStep).
    /// </summary>
    private static void LoadSlice(uint shared, long aGlobal, long wGlobal, long rowStride, int rowStep)
    {
        uint step = (uint)(rowStep * RowBytes);
        long global = rowStep * rowStride;
        CopyAsync16(shared, aGlobal); CopyAsync16(shared + step, aGlobal + global);
        CopyAsync16(shared + 2 * step, aGlobal + 2 * global); CopyAsync16(shared + 3 * step, aGlobal + 3 * global);
        if (rowStep == 16)
        {
            CopyAsync16(shared + 4 * step, aGlobal + 4 * global); CopyAsync16(shared + 5 * step, aGlobal + 5 * global);
            CopyAsync16(shared + 6 * step, aGlobal + 6 * global); CopyAsync16(shared + 7 * step, aGlobal + 7 * global);
        }
        uint w = shared + ABytes;
        CopyAsync16(w, wGlobal); CopyAsync16(w + step, wGlobal + global);
        CopyAsync16(w + 2 * step, wGlobal + 2 * global); CopyAsync16(w + 3 * step, wGlobal + 3 * global);
        CopyAsync16(w + 4 * step, wGlobal + 4 * global); CopyAsync16(w + 5 * step, wGlobal + 5 * global);
        CopyAsync16(w + 6 * step, wGlobal + 6 * global); CopyAsync16(w + 7 * step, wGlobal + 7 * global);
    }

    /// <summary>The outputs an m16 row of eight m16n8 accumulators holds, by scalar sums.</summary>
    private static Acc8 PortableRow(ArrayView<uint> a, ArrayView<uint> w, int k, int row, int col) => new()
    {
        T0 = Portable(a, w, k, row, col), T1 = Portable(a, w, k, row, col + 8), T2 = Portable(a, w, k, row, col + 16), T3 = Portable(a, w, k, row, col + 24),
        T4 = Portable(a, w, k, row, col + 32), T5 = Portable(a, w, k, row, col + 40), T6 = Portable(a, w, k, row, col + 48), T7 = Portable(a, w, k, row, col + 56),
    };

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

    private static void StoreRow(ArrayView<float> c, int n, int row, int col, Acc8 r)
    {
        Store(c, n, row, col, r.T0); Store(c, n, row, col + 8, r.T1); Store(c, n, row, col + 16, r.T2); Store(c, n, row, col + 24, r.T3);
        Store(c, n, row, col + 32, r.T4); Store(c, n, row, col + 40, r.T5); Store(c, n, row, col + 48, r.T6); Store(c, n, row, col + 56, r.T7);
    }

    private static void Store(ArrayView<float> c, int n, int row, int col, Acc f)
    {
        c[(long)row * n + col] = f.C0;
        c[(long)row * n + col + 1] = f.C1;
        c[(long)(row + 8) * n + col] = f.C2;
        c[(long)(row + 8) * n + col + 1] = f.C3;
    }
}
