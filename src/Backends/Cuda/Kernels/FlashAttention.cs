using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using static ModelCompiler.Backends.Cuda.Kernels.TensorCorePtx;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>Shapes of the tensor-core attention: q[B,S,Hq,128], k and v [B,T,Hkv,128] as packed fp16 pairs, o fp32.</summary>
public struct FlashShape
{
    public int B, S, T, Hq, Hkv;

    /// <summary>1: causal (key j visible to query i when j ≤ i + T − S).</summary>
    public int Causal;

    /// <summary>The softmax scale times log2(e) (the kernel works in base 2).</summary>
    public float ScaleLog2;
}

/// <summary>
/// FlashAttention-2 forward on the tensor cores, head dim 128, fp16 operands with fp32 accumulation and softmax.
/// A 256-thread group (8 warps × 16 query rows) owns 128 queries of one (batch, head); keys and values stream through
/// shared memory in tiles of 64, double-buffered with <c>cp.async</c> (the next key tile loads while this one's scores
/// are computed, the next value tile while the output is). S = Q·Kᵀ and O += P·V are <c>mma.sync.m16n8k16</c>; Q
/// fragments stay in registers for the whole block; P goes from the score accumulators to the A operand without
/// shared memory; the online softmax (running max and sum per row, base 2) is in registers, reduced over the four lanes
/// of a row by shuffles. Causal blocks stop at the diagonal tile and mask inside it only; causal blocks are scheduled
/// longest first. GQA reads the key/value head h / (Hq / Hkv). S a multiple of 128, T of 64.
/// Shared rows are 256 bytes whose 16-byte chunks are XOR-swizzled by the row's low three bits (conflict-free
/// cp.async stores, ldmatrix and ldmatrix.trans loads).
/// On the CPU accelerator (no PTX) each thread computes the outputs it owns with scalar math (the portable path CI runs).
/// </summary>
public static class FlashAttention
{
    public const int HeadDim = 128, QueryTile = 128, KeyTile = 64, Threads = 256;
    private const int RowBytes = HeadDim * 2, QBytes = QueryTile * RowBytes, KvBytes = KeyTile * RowBytes;

    /// <summary>Q tile, two key tiles, two value tiles.</summary>
    public const int SharedBytes = QBytes + 4 * KvBytes;

    public static KernelConfig Config(FlashShape s) =>
        new(new Index3D(s.S / QueryTile, s.Hq, s.B), new Index3D(Threads, 1, 1), SharedMemoryConfig.RequestDynamic<byte>(SharedBytes));

    public static string? Unsupported(int s, int t, int hq, int hkv, int d) =>
        d != HeadDim ? $"the tensor-core attention needs head dim {HeadDim} (got {d})"
        : s % QueryTile != 0 || t % KeyTile != 0 ? $"the tensor-core attention needs S a multiple of {QueryTile} and T of {KeyTile} (got S {s}, T {t})"
        : hkv <= 0 || hq % hkv != 0 ? $"query heads {hq} are not a multiple of key/value heads {hkv}"
        : t < s ? $"the tensor-core attention needs T ≥ S (got S {s}, T {t})" : null;

    /// <param name="qAddress">device addresses of q, k, v (<see cref="TensorCorePtx.DeviceAddress"/>), for cp.async</param>
    public static void Attention(ArrayView<uint> q, ArrayView<uint> k, ArrayView<uint> v, ArrayView<float> o,
        long qAddress, long kAddress, long vAddress, FlashShape s)
    {
        var shared = SharedMemory.GetDynamic<byte>(); // addressed through DynamicSharedBase
        int tid = Group.IdxX, warp = tid >> 5, lane = tid & 31;
        int h = Grid.IdxY, b = Grid.IdxZ, kvh = h / (s.Hq / s.Hkv);
        // Causal blocks run longest first (the last query tiles see the most keys).
        int qTile = s.Causal != 0 ? Grid.DimX - 1 - Grid.IdxX : Grid.IdxX;
        int q0 = qTile * QueryTile;
        int offset = s.T - s.S;
        int tiles = s.Causal != 0 ? Math.Min(s.T, q0 + QueryTile + offset + KeyTile - 1) / KeyTile : s.T / KeyTile;
        int row = q0 + warp * 16 + (lane >> 2); // this lane's rows: row and row + 8

        Acc8 oLo = default, oHi = default;
        float l0 = 0, l1 = 0;
        if (CudaAsm.IsSupported)
        {
            uint smem = DynamicSharedBase(), qShared = smem, kShared = smem + QBytes, vShared = kShared + 2 * KvBytes;
            long qRowStride = (long)s.Hq * RowBytes, kvRowStride = (long)s.Hkv * RowBytes;
            long qBase = qAddress + ((long)b * s.S * s.Hq + h) * RowBytes, kBase = kAddress + ((long)b * s.T * s.Hkv + kvh) * RowBytes;
            long vBase = vAddress + ((long)b * s.T * s.Hkv + kvh) * RowBytes;
            // Loads: thread tid copies chunk tid%16 of rows tid/16 + 16r.
            int loadRow = tid >> 4, loadChunk = tid & 15;
            uint loadShared = (uint)(loadRow * RowBytes + ((loadChunk ^ (loadRow & 7)) << 4));
            for (int r = 0; r < QueryTile / 16; r++)
                CopyAsync16(qShared + loadShared + (uint)(r * 16 * RowBytes), qBase + (q0 + loadRow + r * 16) * qRowStride + loadChunk * 16);
            LoadKv(kShared + loadShared, kBase + loadRow * kvRowStride + loadChunk * 16, kvRowStride);
            Commit();
            LoadKv(vShared + loadShared, vBase + loadRow * kvRowStride + loadChunk * 16, kvRowStride);
            Commit();

            uint swizzle = (uint)(lane & 7);
            // ldmatrix row addresses: Q rows (lanes 0-15 rows, 16-31 the upper k half); K pairs of n8 key tiles;
            // V (transposed) key rows 0-15 by lane bit 3, d chunk pairs by lane bit 4.
            uint qRow = (uint)((warp * 16 + (lane & 15)) * RowBytes), qHigh = (uint)(lane >> 4);
            uint kRow = (uint)((((lane >> 4) << 3) + (lane & 7)) * RowBytes), kHigh = (uint)((lane >> 3) & 1);
            uint vRow = (uint)(((((lane >> 3) & 1) << 3) + (lane & 7)) * RowBytes), vHigh = (uint)(lane >> 4);

            Wait(1);
            Group.Barrier();
            Reg4 qa0 = LoadMatrixX4(qShared + qRow + (((0 + qHigh) ^ swizzle) << 4));
            Reg4 qa1 = LoadMatrixX4(qShared + qRow + (((2 + qHigh) ^ swizzle) << 4));
            Reg4 qa2 = LoadMatrixX4(qShared + qRow + (((4 + qHigh) ^ swizzle) << 4));
            Reg4 qa3 = LoadMatrixX4(qShared + qRow + (((6 + qHigh) ^ swizzle) << 4));
            Reg4 qa4 = LoadMatrixX4(qShared + qRow + (((8 + qHigh) ^ swizzle) << 4));
            Reg4 qa5 = LoadMatrixX4(qShared + qRow + (((10 + qHigh) ^ swizzle) << 4));
            Reg4 qa6 = LoadMatrixX4(qShared + qRow + (((12 + qHigh) ^ swizzle) << 4));
            Reg4 qa7 = LoadMatrixX4(qShared + qRow + (((14 + qHigh) ^ swizzle) << 4));

            float m0 = float.NegativeInfinity, m1 = float.NegativeInfinity;
            for (int t = 0; t < tiles; t++)
            {
                uint buffer = (uint)(t & 1) * KvBytes, nextBuffer = (uint)((t + 1) & 1) * KvBytes;
                if (t > 0)
                {
                    Wait(1); // this key tile landed; its value tile may still be in flight
                    Group.Barrier();
                }
                if (t + 1 < tiles) LoadKv(kShared + nextBuffer + loadShared, kBase + ((t + 1) * KeyTile + loadRow) * kvRowStride + loadChunk * 16, kvRowStride);
                Commit();

                // S = Q·Kᵀ over the 128 head dims (8 k-steps).
                Acc8 sc = default;
                uint kAt = kShared + buffer + kRow;
                QkStep(ref sc, qa0, kAt, (0 + kHigh) ^ swizzle); QkStep(ref sc, qa1, kAt, (2 + kHigh) ^ swizzle);
                QkStep(ref sc, qa2, kAt, (4 + kHigh) ^ swizzle); QkStep(ref sc, qa3, kAt, (6 + kHigh) ^ swizzle);
                QkStep(ref sc, qa4, kAt, (8 + kHigh) ^ swizzle); QkStep(ref sc, qa5, kAt, (10 + kHigh) ^ swizzle);
                QkStep(ref sc, qa6, kAt, (12 + kHigh) ^ swizzle); QkStep(ref sc, qa7, kAt, (14 + kHigh) ^ swizzle);

                int k0 = t * KeyTile;
                if (s.Causal != 0 && k0 + KeyTile - 1 > q0 + warp * 16 + offset) MaskCausal(ref sc, row + offset - k0, lane);

                // Online softmax (base 2): new row maxima over the quad, rescale, exponentiate in place.
                float t0 = RowMax(sc, true), t1 = RowMax(sc, false);
                t0 = Math.Max(t0, ShuffleXor(t0, 1)); t0 = Math.Max(t0, ShuffleXor(t0, 2));
                t1 = Math.Max(t1, ShuffleXor(t1, 1)); t1 = Math.Max(t1, ShuffleXor(t1, 2));
                float n0 = Math.Max(m0, t0 * s.ScaleLog2), n1 = Math.Max(m1, t1 * s.ScaleLog2);
                // A row with nothing visible yet keeps 0 as its reference (exp2(-inf) = 0 everywhere).
                float r0 = n0 == float.NegativeInfinity ? 0f : n0, r1 = n1 == float.NegativeInfinity ? 0f : n1;
                float alpha0 = Exp2(m0 - r0), alpha1 = Exp2(m1 - r1);
                m0 = n0; m1 = n1;
                l0 = l0 * alpha0 + Exponentiate(ref sc, s.ScaleLog2, r0, true);
                l1 = l1 * alpha1 + Exponentiate(ref sc, s.ScaleLog2, r1, false);
                Rescale(ref oLo, alpha0, alpha1); Rescale(ref oHi, alpha0, alpha1);

                Wait(1); // this value tile landed; the next key tile may still be in flight
                Group.Barrier();
                if (t + 1 < tiles) LoadKv(vShared + nextBuffer + loadShared, vBase + ((t + 1) * KeyTile + loadRow) * kvRowStride + loadChunk * 16, kvRowStride);
                Commit();

                // O += P·V: P's accumulators are the A fragments of four key k-steps.
                uint vAt = vShared + buffer + vRow;
                PvStep(ref oLo, ref oHi, Pack(sc.T0, sc.T1), vAt, vHigh ^ swizzle);
                PvStep(ref oLo, ref oHi, Pack(sc.T2, sc.T3), vAt + 16 * RowBytes, vHigh ^ swizzle);
                PvStep(ref oLo, ref oHi, Pack(sc.T4, sc.T5), vAt + 32 * RowBytes, vHigh ^ swizzle);
                PvStep(ref oLo, ref oHi, Pack(sc.T6, sc.T7), vAt + 48 * RowBytes, vHigh ^ swizzle);
            }
            Wait(0);
            l0 += ShuffleXor(l0, 1); l0 += ShuffleXor(l0, 2);
            l1 += ShuffleXor(l1, 1); l1 += ShuffleXor(l1, 2);
        }
        else
        {
            PortableRows(q, k, v, s, b, h, kvh, row, lane, ref oLo, ref oHi, ref l0, ref l1);
        }

        // No visible key: the row is zero (as the interpreter), not NaN.
        float inv0 = l0 > 0 ? 1f / l0 : 0f, inv1 = l1 > 0 ? 1f / l1 : 0f;
        long o0 = (((long)b * s.S + row) * s.Hq + h) * HeadDim + (lane & 3) * 2, o8 = o0 + 8L * s.Hq * HeadDim;
        StoreHalfRow(o, o0, o8, oLo, inv0, inv1);
        StoreHalfRow(o, o0 + 64, o8 + 64, oHi, inv0, inv1);
    }

    /// <summary>Four cp.async rows 16 apart, at both the shared ring slot and the global tile.</summary>
    private static void LoadKv(uint shared, long global, long rowStride)
    {
        CopyAsync16(shared, global);
        CopyAsync16(shared + 16 * RowBytes, global + 16 * rowStride);
        CopyAsync16(shared + 32 * RowBytes, global + 32 * rowStride);
        CopyAsync16(shared + 48 * RowBytes, global + 48 * rowStride);
    }

    /// <summary>One k16 step of S = Q·Kᵀ over the tile's 64 keys (four ldmatrix.x4 of key pairs, eight mma).</summary>
    private static void QkStep(ref Acc8 s, Reg4 qa, uint kAt, uint chunk)
    {
        uint at = kAt + (chunk << 4);
        Reg4 b01 = LoadMatrixX4(at), b23 = LoadMatrixX4(at + 16 * RowBytes), b45 = LoadMatrixX4(at + 32 * RowBytes), b67 = LoadMatrixX4(at + 48 * RowBytes);
        Mma(ref s.T0, qa, b01.X0, b01.X1); Mma(ref s.T1, qa, b01.X2, b01.X3);
        Mma(ref s.T2, qa, b23.X0, b23.X1); Mma(ref s.T3, qa, b23.X2, b23.X3);
        Mma(ref s.T4, qa, b45.X0, b45.X1); Mma(ref s.T5, qa, b45.X2, b45.X3);
        Mma(ref s.T6, qa, b67.X0, b67.X1); Mma(ref s.T7, qa, b67.X2, b67.X3);
    }

    /// <summary>One k16 step (16 keys) of O += P·V over the 128 dims: eight ldmatrix.x4.trans of V, sixteen mma.</summary>
    private static void PvStep(ref Acc8 lo, ref Acc8 hi, Reg4 p, uint vAt, uint chunkLow)
    {
        // d chunk pair c (dims 16c..16c+15) sits at physical chunk (2c + lane bit 4) ^ swizzle; chunkLow holds both terms' low bits.
        Reg4 v0 = LoadMatrixX4Transposed(vAt + ((chunkLow ^ 0u) << 4)), v1 = LoadMatrixX4Transposed(vAt + ((chunkLow ^ 2u) << 4));
        Reg4 v2 = LoadMatrixX4Transposed(vAt + ((chunkLow ^ 4u) << 4)), v3 = LoadMatrixX4Transposed(vAt + ((chunkLow ^ 6u) << 4));
        Reg4 v4 = LoadMatrixX4Transposed(vAt + ((chunkLow ^ 8u) << 4)), v5 = LoadMatrixX4Transposed(vAt + ((chunkLow ^ 10u) << 4));
        Reg4 v6 = LoadMatrixX4Transposed(vAt + ((chunkLow ^ 12u) << 4)), v7 = LoadMatrixX4Transposed(vAt + ((chunkLow ^ 14u) << 4));
        Mma(ref lo.T0, p, v0.X0, v0.X1); Mma(ref lo.T1, p, v0.X2, v0.X3);
        Mma(ref lo.T2, p, v1.X0, v1.X1); Mma(ref lo.T3, p, v1.X2, v1.X3);
        Mma(ref lo.T4, p, v2.X0, v2.X1); Mma(ref lo.T5, p, v2.X2, v2.X3);
        Mma(ref lo.T6, p, v3.X0, v3.X1); Mma(ref lo.T7, p, v3.X2, v3.X3);
        Mma(ref hi.T0, p, v4.X0, v4.X1); Mma(ref hi.T1, p, v4.X2, v4.X3);
        Mma(ref hi.T2, p, v5.X0, v5.X1); Mma(ref hi.T3, p, v5.X2, v5.X3);
        Mma(ref hi.T4, p, v6.X0, v6.X1); Mma(ref hi.T5, p, v6.X2, v6.X3);
        Mma(ref hi.T6, p, v7.X0, v7.X1); Mma(ref hi.T7, p, v7.X2, v7.X3);
    }

    /// <summary>The A fragment of a k16 step from two score tiles (keys 0-7 and 8-15 of the step), rounded to fp16.</summary>
    private static Reg4 Pack(Acc a, Acc b) => new()
    {
        X0 = PackHalf2(a.C0, a.C1), X1 = PackHalf2(a.C2, a.C3), X2 = PackHalf2(b.C0, b.C1), X3 = PackHalf2(b.C2, b.C3),
    };

    /// <summary>
    /// Hides keys past the diagonal: <paramref name="limit"/> is the last visible key of this lane's upper row relative
    /// to the tile's first key (the lower row sees 8 more).
    /// </summary>
    private static void MaskCausal(ref Acc8 s, int limit, int lane)
    {
        int c = (lane & 3) * 2;
        MaskTile(ref s.T0, limit, c); MaskTile(ref s.T1, limit, c + 8); MaskTile(ref s.T2, limit, c + 16); MaskTile(ref s.T3, limit, c + 24);
        MaskTile(ref s.T4, limit, c + 32); MaskTile(ref s.T5, limit, c + 40); MaskTile(ref s.T6, limit, c + 48); MaskTile(ref s.T7, limit, c + 56);
    }

    private static void MaskTile(ref Acc a, int limit, int col)
    {
        if (col > limit) a.C0 = float.NegativeInfinity;
        if (col + 1 > limit) a.C1 = float.NegativeInfinity;
        if (col > limit + 8) a.C2 = float.NegativeInfinity;
        if (col + 1 > limit + 8) a.C3 = float.NegativeInfinity;
    }

    private static float RowMax(Acc8 s, bool upper) => upper
        ? Math.Max(Math.Max(Math.Max(Math.Max(s.T0.C0, s.T0.C1), Math.Max(s.T1.C0, s.T1.C1)), Math.Max(Math.Max(s.T2.C0, s.T2.C1), Math.Max(s.T3.C0, s.T3.C1))),
                   Math.Max(Math.Max(Math.Max(s.T4.C0, s.T4.C1), Math.Max(s.T5.C0, s.T5.C1)), Math.Max(Math.Max(s.T6.C0, s.T6.C1), Math.Max(s.T7.C0, s.T7.C1))))
        : Math.Max(Math.Max(Math.Max(Math.Max(s.T0.C2, s.T0.C3), Math.Max(s.T1.C2, s.T1.C3)), Math.Max(Math.Max(s.T2.C2, s.T2.C3), Math.Max(s.T3.C2, s.T3.C3))),
                   Math.Max(Math.Max(Math.Max(s.T4.C2, s.T4.C3), Math.Max(s.T5.C2, s.T5.C3)), Math.Max(Math.Max(s.T6.C2, s.T6.C3), Math.Max(s.T7.C2, s.T7.C3))));

    /// <summary>p = 2^(s·scale − reference) in place for one row of the lane (upper: C0/C1, lower: C2/C3); returns Σp.</summary>
    private static float Exponentiate(ref Acc8 s, float scale, float reference, bool upper) =>
        ExpTile(ref s.T0, scale, reference, upper) + ExpTile(ref s.T1, scale, reference, upper) + ExpTile(ref s.T2, scale, reference, upper) + ExpTile(ref s.T3, scale, reference, upper)
        + ExpTile(ref s.T4, scale, reference, upper) + ExpTile(ref s.T5, scale, reference, upper) + ExpTile(ref s.T6, scale, reference, upper) + ExpTile(ref s.T7, scale, reference, upper);

    private static float ExpTile(ref Acc a, float scale, float reference, bool upper)
    {
        if (upper)
        {
            a.C0 = Exp2(a.C0 * scale - reference); a.C1 = Exp2(a.C1 * scale - reference);
            return a.C0 + a.C1;
        }
        a.C2 = Exp2(a.C2 * scale - reference); a.C3 = Exp2(a.C3 * scale - reference);
        return a.C2 + a.C3;
    }

    private static void Rescale(ref Acc8 o, float upper, float lower)
    {
        Scale(ref o.T0, upper, lower); Scale(ref o.T1, upper, lower); Scale(ref o.T2, upper, lower); Scale(ref o.T3, upper, lower);
        Scale(ref o.T4, upper, lower); Scale(ref o.T5, upper, lower); Scale(ref o.T6, upper, lower); Scale(ref o.T7, upper, lower);
    }

    private static void Scale(ref Acc a, float upper, float lower)
    {
        a.C0 *= upper; a.C1 *= upper; a.C2 *= lower; a.C3 *= lower;
    }

    private static void StoreHalfRow(ArrayView<float> o, long upper, long lower, Acc8 a, float inv0, float inv1)
    {
        StoreTile(o, upper, lower, a.T0, inv0, inv1); StoreTile(o, upper + 8, lower + 8, a.T1, inv0, inv1);
        StoreTile(o, upper + 16, lower + 16, a.T2, inv0, inv1); StoreTile(o, upper + 24, lower + 24, a.T3, inv0, inv1);
        StoreTile(o, upper + 32, lower + 32, a.T4, inv0, inv1); StoreTile(o, upper + 40, lower + 40, a.T5, inv0, inv1);
        StoreTile(o, upper + 48, lower + 48, a.T6, inv0, inv1); StoreTile(o, upper + 56, lower + 56, a.T7, inv0, inv1);
    }

    private static void StoreTile(ArrayView<float> o, long upper, long lower, Acc a, float inv0, float inv1)
    {
        o[upper] = a.C0 * inv0; o[upper + 1] = a.C1 * inv0;
        o[lower] = a.C2 * inv1; o[lower + 1] = a.C3 * inv1;
    }

    /// <summary>
    /// The portable path: this lane's two rows (row, row + 8) and its 32 output dims, with unnormalised sums in the
    /// same fragment places as the tensor-core path (so the store is shared).
    /// </summary>
    private static void PortableRows(ArrayView<uint> q, ArrayView<uint> k, ArrayView<uint> v, FlashShape s, int b, int h, int kvh, int row, int lane,
        ref Acc8 lo, ref Acc8 hi, ref float l0, ref float l1)
    {
        int col = (lane & 3) * 2;
        for (int half = 0; half < 2; half++)
        {
            int i = row + half * 8;
            long qo = (((long)b * s.S + i) * s.Hq + h) * (HeadDim / 2);
            long end = s.Causal != 0 ? Math.Min(s.T, i + s.T - s.S + 1) : s.T;
            float m = float.NegativeInfinity;
            for (int j = 0; j < end; j++) m = Math.Max(m, Score(q, k, s, qo, b, kvh, j));
            float l = 0;
            Acc8 a = default, c = default;
            for (int j = 0; j < end; j++)
            {
                // fp16 probabilities, as the tensor-core path feeds P·V.
                float p = HalfBits.ToFloat(HalfOf(Exp2Portable(Score(q, k, s, qo, b, kvh, j) * s.ScaleLog2 - m * s.ScaleLog2)));
                l += p;
                long vo = (((long)b * s.T + j) * s.Hkv + kvh) * (HeadDim / 2) + col / 2;
                AddRow(ref a, v, vo, p, half == 0);
                AddRow(ref c, v, vo + 32, p, half == 0);
            }
            Merge(ref lo, a, half == 0); Merge(ref hi, c, half == 0);
            if (half == 0) l0 = l; else l1 = l;
        }
    }

    private static float Score(ArrayView<uint> q, ArrayView<uint> k, FlashShape s, long qo, int b, int kvh, int j)
    {
        long ko = (((long)b * s.T + j) * s.Hkv + kvh) * (HeadDim / 2);
        float dot = 0;
        for (int d = 0; d < HeadDim / 2; d++)
        {
            uint x = q[qo + d], y = k[ko + d];
            dot += HalfBits.Low(x) * HalfBits.Low(y) + HalfBits.High(x) * HalfBits.High(y);
        }
        return dot;
    }

    private static float Exp2Portable(float x) => DeviceMath.Exp(x * 0.6931471805599453f);

    /// <summary>fp32 → fp16 bits, round to nearest even, for values in [0, 1] (probabilities).</summary>
    private static uint HalfOf(float x)
    {
        if (x <= 0f) return 0;
        if (x < 6.103515625e-05f) return (uint)(x * 16777216f + 0.5f); // subnormal range, steps of 2^-24
        uint bits = (uint)Interop.FloatAsInt(x);
        uint exponent = (bits >> 23) - 112, mantissa = bits & 0x7FFFFF;
        uint half = (exponent << 10) | (mantissa >> 13);
        uint rest = mantissa & 0x1FFF;
        if (rest > 0x1000 || (rest == 0x1000 && (half & 1) != 0)) half++;
        return half;
    }

    /// <summary>Adds p·v over this lane's eight dim pairs of one 64-dim half (pair words at vo + 4t).</summary>
    private static void AddRow(ref Acc8 a, ArrayView<uint> v, long vo, float p, bool upper)
    {
        AddPair(ref a.T0, v[vo], p, upper); AddPair(ref a.T1, v[vo + 4], p, upper); AddPair(ref a.T2, v[vo + 8], p, upper); AddPair(ref a.T3, v[vo + 12], p, upper);
        AddPair(ref a.T4, v[vo + 16], p, upper); AddPair(ref a.T5, v[vo + 20], p, upper); AddPair(ref a.T6, v[vo + 24], p, upper); AddPair(ref a.T7, v[vo + 28], p, upper);
    }

    private static void AddPair(ref Acc a, uint pair, float p, bool upper)
    {
        if (upper) { a.C0 += p * HalfBits.Low(pair); a.C1 += p * HalfBits.High(pair); }
        else { a.C2 += p * HalfBits.Low(pair); a.C3 += p * HalfBits.High(pair); }
    }

    private static void Merge(ref Acc8 into, Acc8 a, bool upper)
    {
        MergeTile(ref into.T0, a.T0, upper); MergeTile(ref into.T1, a.T1, upper); MergeTile(ref into.T2, a.T2, upper); MergeTile(ref into.T3, a.T3, upper);
        MergeTile(ref into.T4, a.T4, upper); MergeTile(ref into.T5, a.T5, upper); MergeTile(ref into.T6, a.T6, upper); MergeTile(ref into.T7, a.T7, upper);
    }

    private static void MergeTile(ref Acc into, Acc a, bool upper)
    {
        if (upper) { into.C0 = a.C0; into.C1 = a.C1; }
        else { into.C2 = a.C2; into.C3 = a.C3; }
    }
}
