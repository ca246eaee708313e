using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using static ModelCompiler.Runtime.Kernels.GemmMicroKernels;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>Which micro-kernel family runs. Auto picks the widest the machine accelerates, at run time.</summary>
public enum GemmIsa { Auto, Scalar, Vector256, Vector512 }

/// <summary>How a product is spread over cores.</summary>
public enum GemmThreading
{
    /// <summary>The persistent <see cref="GemmWorkerPool.Shared"/> (spinning workers: cheapest per call).</summary>
    Pool,
    /// <summary>Parallel.For on the .NET thread pool (for comparison).</summary>
    ParallelFor,
    /// <summary>The calling thread only.</summary>
    Single,
}

/// <summary>Knobs of <see cref="Gemm"/>; the defaults are what the code generator should use.</summary>
public sealed record GemmOptions
{
    /// <summary>The options of calls that give none (compiled models); <see cref="KernelThreading.MaxThreads"/> sets its thread cap.</summary>
    public static GemmOptions Default { get; private set; } = new();

    internal static void SetDefault(GemmOptions options) => Default = options;

    public GemmIsa Isa { get; init; } = GemmIsa.Auto;
    public GemmThreading Threading { get; init; } = GemmThreading.Pool;
    /// <summary>Threads at most (0: one per core, Environment.ProcessorCount).</summary>
    public int MaxThreads { get; init; }
    /// <summary>K block (depth of a packed X block and of the weight sub-panel the micro-kernel streams); 0: default.</summary>
    public int KC { get; init; }
    /// <summary>Rows of X per packed block (kept in L2); 0: default.</summary>
    public int MC { get; init; }
    /// <summary>Output columns per outer block; 0: default.</summary>
    public int NC { get; init; }
}

/// <summary>
/// Blocked fp32 GEMM for linear layers: Y[M, N] = X[M, K] · Wᵀ (+ bias[N]) (+ residual[M, N]), with W
/// pre-packed (<see cref="PackedWeight"/>). BLIS-style loops: N blocks (NC) → K blocks (KC) → row blocks
/// of X (MC, packed MR-row micro-panels, K-major) → 32-column weight panels → MR-row tiles, each an
/// MR×32 register-blocked micro-kernel (14×32 in Vector512, 6×16 twice in Vector256). A single row
/// (decode, M=1) is a matrix-vector product that streams each weight panel once, with split
/// accumulators to cover FMA latency. Threads take tasks from a grid of (row blocks × chunks of weight
/// panels), several per thread, so each weight panel is read once per row block and a preempted thread
/// delays little.
/// </summary>
public static unsafe class Gemm
{
    /// <summary>The ISA that <see cref="GemmIsa.Auto"/> resolves to on this machine.</summary>
    public static GemmIsa BestIsa { get; } =
        Vector512.IsHardwareAccelerated && Avx512F.IsSupported ? GemmIsa.Vector512
        : Avx2.IsSupported && Fma.IsSupported ? GemmIsa.Vector256
        : GemmIsa.Scalar;

    public static bool IsSupported(GemmIsa isa) => isa switch
    {
        GemmIsa.Auto or GemmIsa.Scalar => true,
        GemmIsa.Vector256 => Avx2.IsSupported && Fma.IsSupported,
        GemmIsa.Vector512 => Avx512F.IsSupported,
        _ => false,
    };

    public const int DefaultKC = 768;
    public const int DefaultMC = 14 * 18;       // 252 rows × 768 × 4 B = 756 KB of packed X in L2
    public const int DefaultNC = 4096;

    /// <summary>Below this many multiply-adds a product runs on the calling thread.</summary>
    public const long ParallelThreshold = 1 << 17;

    /// <summary>
    /// Y = X·Wᵀ + bias + residual, all row-major and contiguous: x [m, w.K], y and residual [m, w.N],
    /// bias [w.N]. bias and residual may be empty (absent). residual may be y itself (y += X·Wᵀ + bias).
    /// </summary>
    public static void Linear(ReadOnlySpan<float> x, int m, PackedWeight w, Span<float> y,
        ReadOnlySpan<float> bias = default, ReadOnlySpan<float> residual = default, GemmOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(w);
        if (x.Length < (long)m * w.K) throw new ArgumentException($"x has {x.Length} elements, [{m}, {w.K}] needs {(long)m * w.K}", nameof(x));
        if (y.Length < (long)m * w.N) throw new ArgumentException($"y has {y.Length} elements, [{m}, {w.N}] needs {(long)m * w.N}", nameof(y));
        if (!bias.IsEmpty && bias.Length < w.N) throw new ArgumentException($"bias has {bias.Length} elements, needs {w.N}", nameof(bias));
        if (!residual.IsEmpty && residual.Length < (long)m * w.N) throw new ArgumentException($"residual has {residual.Length} elements, needs {(long)m * w.N}", nameof(residual));
        fixed (float* px = x)
        fixed (float* py = y)
        fixed (float* pb = bias)
        fixed (float* pr = residual)
            Linear(px, w.K, m, w, py, w.N, bias.IsEmpty ? null : pb, residual.IsEmpty ? null : pr, w.N, options);
    }

    /// <summary>
    /// Strided form: row i of x starts at x[i·ldx], of y at y[i·ldy], of residual at residual[i·ldr]
    /// (for slices of wider buffers, e.g. one projection's columns of a fused QKV output). bias and
    /// residual may be empty; residual may be y itself when ldr == ldy.
    /// </summary>
    public static void Linear(ReadOnlySpan<float> x, int ldx, int m, PackedWeight w, Span<float> y, int ldy,
        ReadOnlySpan<float> bias, ReadOnlySpan<float> residual, int ldr, GemmOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(w);
        if (m <= 0) return;
        static long Need(int rows, int ld, int cols) => (long)(rows - 1) * ld + cols;
        if (ldx < w.K || x.Length < Need(m, ldx, w.K)) throw new ArgumentException($"x ({x.Length} elements, row stride {ldx}) does not hold [{m}, {w.K}]", nameof(x));
        if (ldy < w.N || y.Length < Need(m, ldy, w.N)) throw new ArgumentException($"y ({y.Length} elements, row stride {ldy}) does not hold [{m}, {w.N}]", nameof(y));
        if (!bias.IsEmpty && bias.Length < w.N) throw new ArgumentException($"bias has {bias.Length} elements, needs {w.N}", nameof(bias));
        if (!residual.IsEmpty && (ldr < w.N || residual.Length < Need(m, ldr, w.N))) throw new ArgumentException($"residual ({residual.Length} elements, row stride {ldr}) does not hold [{m}, {w.N}]", nameof(residual));
        fixed (float* px = x)
        fixed (float* py = y)
        fixed (float* pb = bias)
        fixed (float* pr = residual)
            Linear(px, ldx, m, w, py, ldy, bias.IsEmpty ? null : pb, residual.IsEmpty ? null : pr, ldr, options);
    }

    /// <summary>
    /// Pointer form with row strides (elements): x [m, w.K] with stride ldx, y [m, w.N] with stride ldy,
    /// residual (nullable) with stride ldr, bias (nullable) [w.N]. residual may equal y when ldr == ldy.
    /// The caller keeps the memory alive and fixed for the call.
    /// </summary>
    public static void Linear(float* x, nint ldx, int m, PackedWeight w, float* y, nint ldy,
        float* bias, float* residual, nint ldr, GemmOptions? options = null)
    {
        options ??= GemmOptions.Default;
        if (m <= 0) return;
        if (ldx < w.K || ldy < w.N || (residual != null && ldr < w.N)) throw new ArgumentException("row stride shorter than the row");
        var isa = options.Isa == GemmIsa.Auto ? BestIsa : options.Isa;
        if (!IsSupported(isa)) throw new PlatformNotSupportedException($"GEMM ISA {isa} is not supported on this machine");

        var p = new Problem
        {
            X = x, Ldx = ldx, M = m, W = w, Y = y, Ldy = ldy, Bias = bias, R = residual, Ldr = ldr,
            Isa = isa,
            MR = isa switch { GemmIsa.Vector512 => MR512, GemmIsa.Vector256 => MR256, _ => MRScalar },
        };
        // K blocks of equal depth (a multiple of 8) no deeper than KC; one row tile: no K blocking
        // (no reuse of a weight sub-panel across tiles, and C is then written once).
        int kcMax = m <= p.MR ? w.K : options.KC > 0 ? options.KC : DefaultKC;
        int kBlocks = (w.K + kcMax - 1) / kcMax;
        p.KC = Math.Min(w.K, ((w.K + kBlocks - 1) / kBlocks + 7) & ~7);
        p.MC = Math.Max(p.MR, (options.MC > 0 ? options.MC : DefaultMC) / p.MR * p.MR);
        p.NCPanels = Math.Max(1, (options.NC > 0 ? options.NC : DefaultNC) / PackedWeight.PanelWidth);

        int maxThreads = options.MaxThreads > 0 ? options.MaxThreads : Environment.ProcessorCount;
        if (options.Threading == GemmThreading.Single || (long)m * w.N * w.K < ParallelThreshold) maxThreads = 1;
        int tiles = (m + p.MR - 1) / p.MR;
        p.MPad = tiles * p.MR;
        // X is packed once per call (all rows, all K blocks), in parallel when the product is; a single
        // row is used as it is (its packed form would be itself).
        if (m > 1)
        {
            p.PackedX = PackBuffer((long)p.MPad * w.K);
            if (maxThreads == 1 || tiles == 1) PackAll(in p, 0, tiles);
            else
            {
                var packBox = new StrongBox<Problem>(p);
                int packTasks = Math.Min(maxThreads, tiles);
                Action<int> pack = t => PackAll(in packBox.Value, (int)((long)tiles * t / packTasks), (int)((long)tiles * (t + 1) / packTasks));
                if (options.Threading == GemmThreading.ParallelFor)
                    Parallel.For(0, packTasks, new ParallelOptions { MaxDegreeOfParallelism = maxThreads }, pack);
                else
                    GemmWorkerPool.Shared.Run(packTasks, pack);
            }
        }
        if (maxThreads == 1)
        {
            p.RowBlock = m;
            p.ChunkPanels = w.Panels;
            p.Chunks = 1;
            Compute(in p, 0, w.Panels, 0, m);
            return;
        }
        // Tasks: a grid of row blocks (≤ MC rows, whole MR tiles, balanced) × chunks of weight panels,
        // about TasksPerThread per thread so that a thread the OS preempts (a shared machine) holds up
        // little: the others take the remaining tasks. Each task packs its own rows of X; each weight
        // panel is read by one task per row block (once in all when M ≤ MC, as in decode).
        int rowBlocks = (m + p.MC - 1) / p.MC;
        p.RowBlock = (tiles + rowBlocks - 1) / rowBlocks * p.MR;
        rowBlocks = (m + p.RowBlock - 1) / p.RowBlock;
        int chunksWanted = Math.Max(1, (TasksPerThread * maxThreads + rowBlocks - 1) / rowBlocks);
        p.ChunkPanels = Math.Max(1, (w.Panels + chunksWanted - 1) / chunksWanted);
        p.Chunks = (w.Panels + p.ChunkPanels - 1) / p.ChunkPanels;
        int tasks = rowBlocks * p.Chunks;
        if (tasks == 1)
        {
            Compute(in p, 0, w.Panels, 0, m);
            return;
        }
        // The Problem struct holds raw pointers; box it once into a closure for the workers.
        var boxed = new StrongBox<Problem>(p);
        Action<int> body = t => RunTask(in boxed.Value, t);
        if (options.Threading == GemmThreading.ParallelFor)
            Parallel.For(0, tasks, new ParallelOptions { MaxDegreeOfParallelism = maxThreads }, body);
        else
            GemmWorkerPool.Shared.Run(tasks, body);
    }

    /// <summary>Tasks per thread when a product is split (dynamic load balance vs per-task overhead).</summary>
    public const int TasksPerThread = 8;

    struct Problem
    {
        public float* X, Y, Bias, R;
        public nint Ldx, Ldy, Ldr;
        public int M;
        public PackedWeight W;
        public GemmIsa Isa;
        public int MR, KC, MC, NCPanels;
        /// <summary>X packed for the micro-kernels (null when M = 1): K block at pc starts at pc·MPad, and
        /// within it the MR-row tile t at t·MR·kc, laid out [k][mr].</summary>
        public float* PackedX;
        public int MPad;
        public int RowBlock, ChunkPanels, Chunks;
    }

    static void RunTask(in Problem p, int t)
    {
        int r = t / p.Chunks, c = t % p.Chunks;
        int m0 = r * p.RowBlock, m1 = Math.Min(p.M, m0 + p.RowBlock);
        int p0 = c * p.ChunkPanels, p1 = Math.Min(p.W.Panels, p0 + p.ChunkPanels);
        if (p0 < p1 && m0 < m1) Compute(in p, p0, p1, m0, m1);
    }

    [ThreadStatic] static float* t_packA;
    [ThreadStatic] static long t_packACapacity;

    static float* PackBuffer(long floats)
    {
        if (t_packACapacity < floats)
        {
            if (t_packA != null) NativeMemory.AlignedFree(t_packA);
            t_packA = (float*)NativeMemory.AlignedAlloc((nuint)(floats * sizeof(float)), 64);
            t_packACapacity = floats;
        }
        return t_packA;
    }

    /// <summary>Panels [p0, p1) × rows [m0, m1) of the product, on this thread.</summary>
    static void Compute(in Problem p, int p0, int p1, int m0, int m1)
    {
        var w = p.W;
        int K = w.K, N = w.N, MR = p.MR;
        int kcMax = p.KC;
        int mcMax = Math.Min(p.MC, m1 - m0);
        // Single row: X's row is already its own packed micro-panel ([k][1]); skip the copy.
        float* edge = stackalloc float[MR512 * NR];

        for (int jc = p0; jc < p1; jc += p.NCPanels)
        {
            int jcEnd = Math.Min(p1, jc + p.NCPanels);
            for (int pc = 0; pc < K; pc += kcMax)
            {
                int kc = Math.Min(kcMax, K - pc);
                int flags = pc == 0 ? 0 : LoadC;
                for (int ic = m0; ic < m1; ic += mcMax)
                {
                    int mc = Math.Min(mcMax, m1 - ic);
                    float* a = p.PackedX == null ? p.X + pc : p.PackedX + (long)pc * p.MPad + (long)ic * kc;
                    for (int jr = jc; jr < jcEnd; jr++)
                    {
                        int n0 = jr * NR;
                        int cols = Math.Min(NR, N - n0);
                        long bOff = (long)jr * NR * K + (long)pc * NR;
                        for (int ir = 0; ir < mc; ir += MR)
                        {
                            int mr = Math.Min(MR, mc - ir);
                            int row = ic + ir;
                            float* at = a + (long)ir * kc;
                            float* c = p.Y + row * p.Ldy + n0;
                            float* bias = flags == 0 && p.Bias != null ? p.Bias + n0 : null;
                            float* r = flags == 0 && p.R != null ? p.R + row * p.Ldr + n0 : null;
                            if (cols == NR)
                                Tile(in p, mr, kc, at, bOff, c, p.Ldy, bias, r, p.Ldr, flags);
                            else
                            {
                                // Partial panel: run the full-width kernel on a scratch tile.
                                for (int i = 0; i < mr; i++)
                                    for (int j = 0; j < NR; j++)
                                    {
                                        float v = 0f;
                                        if (j < cols)
                                        {
                                            if (flags != 0) v = c[i * p.Ldy + j];
                                            else
                                            {
                                                if (r != null) v = r[i * p.Ldr + j];
                                                if (bias != null) v += bias[j];
                                            }
                                        }
                                        edge[i * NR + j] = v;
                                    }
                                Tile(in p, mr, kc, at, bOff, edge, NR, null, null, 0, LoadC);
                                for (int i = 0; i < mr; i++)
                                    for (int j = 0; j < cols; j++) c[i * p.Ldy + j] = edge[i * NR + j];
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>Packs the row tiles [t0, t1) of X, every K block, into <see cref="Problem.PackedX"/>.</summary>
    static void PackAll(in Problem p, int t0, int t1)
    {
        if (t0 >= t1) return;
        int K = p.W.K, row0 = t0 * p.MR, rows = Math.Min(p.M, t1 * p.MR) - row0;
        for (int pc = 0; pc < K; pc += p.KC)
        {
            int kc = Math.Min(p.KC, K - pc);
            PackX(p.X + row0 * p.Ldx + pc, p.Ldx, rows, kc, p.MR, p.PackedX + (long)pc * p.MPad + (long)row0 * kc);
        }
    }

    /// <summary>Packs X[0..mc, 0..kc] (row stride ldx) into MR-row micro-panels, each K-major: [k][mr].</summary>
    static void PackX(float* x, nint ldx, int mc, int kc, int MR, float* dst)
    {
        for (int ir = 0; ir < mc; ir += MR)
        {
            int mr = Math.Min(MR, mc - ir);
            float* d = dst + (long)ir * kc;
            float* src = x + ir * ldx;
            if (mr == 1)
            {
                new ReadOnlySpan<float>(src, kc).CopyTo(new Span<float>(d, kc));
                continue;
            }
            // Transpose in blocks of 8 k so each source row is read a cache line at a time.
            int k = 0;
            for (; k + 8 <= kc; k += 8)
                for (int i = 0; i < mr; i++)
                {
                    float* s = src + i * ldx + k;
                    float* o = d + k * mr + i;
                    o[0] = s[0]; o[mr] = s[1]; o[2 * mr] = s[2]; o[3 * mr] = s[3];
                    o[4 * mr] = s[4]; o[5 * mr] = s[5]; o[6 * mr] = s[6]; o[7 * mr] = s[7];
                }
            for (; k < kc; k++)
                for (int i = 0; i < mr; i++) d[k * mr + i] = src[i * ldx + k];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static void Tile(in Problem p, int mr, int kc, float* a, long bOff, float* c, nint ldc, float* bias, float* r, nint ldr, int flags)
    {
        var w = p.W;
        switch (p.Isa)
        {
            case GemmIsa.Vector512:
                switch (w.Format)
                {
                    case WeightFormat.F32: V512_F32[mr - 1](kc, a, w.F32 + bOff, c, ldc, bias, r, ldr, flags); break;
                    case WeightFormat.BF16: V512_BF16[mr - 1](kc, a, w.U16 + bOff, c, ldc, bias, r, ldr, flags); break;
                    default: V512_F16[mr - 1](kc, a, w.U16 + bOff, c, ldc, bias, r, ldr, flags); break;
                }
                break;
            case GemmIsa.Vector256:
                // Two 16-column halves. fp32: columns 0..15 then 16..31. 16-bit: the first 16 weights
                // of a panel row are columns 0..7 and 16..23, the next 16 are 8..15 and 24..31.
                var k256 = w.Format switch { WeightFormat.F32 => 0, WeightFormat.BF16 => 1, _ => 2 };
                int second = k256 == 0 ? 16 : 8;
                for (int h = 0; h < 2; h++)
                {
                    int co = h * second;
                    float* bh = bias == null ? null : bias + co;
                    float* rh = r == null ? null : r + co;
                    if (k256 == 0) V256_F32[mr - 1](kc, a, w.F32 + bOff + h * 16, c + co, ldc, bh, rh, ldr, flags);
                    else if (k256 == 1) V256_BF16[mr - 1](kc, a, w.U16 + bOff + h * 16, c + co, ldc, bh, rh, ldr, flags);
                    else V256_F16[mr - 1](kc, a, w.U16 + bOff + h * 16, c + co, ldc, bh, rh, ldr, flags);
                }
                break;
            default:
                if (w.Format == WeightFormat.F32) ScalarF32(mr, kc, a, w.F32 + bOff, c, ldc, bias, r, ldr, flags);
                else ScalarU16(w.Format == WeightFormat.F16, mr, kc, a, w.U16 + bOff, c, ldc, bias, r, ldr, flags);
                break;
        }
    }
}
