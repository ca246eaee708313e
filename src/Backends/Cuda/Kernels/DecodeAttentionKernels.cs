using ILGPU;
using ILGPU.Runtime;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>
/// Flash-decoding: attention of one query row per (batch, head) over a long cache, split over the cache length so that
/// every SM has work. <see cref="Partial"/>: one warp per (batch·head, split) scores its key range (a key per lane,
/// tiles of 32), keeps an online softmax (max m, sum l) and the unnormalised output (lane l owns dims l, l+32, …), and
/// writes (m, l, o) to scratch; <see cref="Combine"/> rescales the splits to the common max and divides by the total
/// sum. Masks, window, sinks, GQA and an additive bias as <see cref="AttentionKernels"/> (the query sits at T − 1).
/// </summary>
public static class DecodeAttentionKernels
{
    public const int Lanes = 32, MaxHeadDim = 256;

    /// <summary>scratch[(row·splits + split)·(Dv + 2) + …] = o[0..Dv), m, l; row = b·Hq + h.</summary>
    public static void Partial(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> bias, ArrayView<float> scratch, AttentionShape s, int chunk)
    {
        var qs = SharedMemory.Allocate<float>(MaxHeadDim);
        var ps = SharedMemory.Allocate<float>(Lanes);
        int lane = Group.IdxX;
        int row = Grid.IdxX, split = Grid.IdxY, splits = Grid.DimY;
        int h = row % s.Hq, b = row / s.Hq;
        int kvh = h / (s.Hq / s.Hkv);
        long p = s.T - 1;
        long qo = ((long)b * s.Hq + h) * s.D;
        for (int d = lane; d < s.D; d += Lanes) qs[d] = q[qo + d];
        Group.Barrier();

        long end = s.Mask == 1 ? p + 1 : s.Mask == 2 ? Math.Max(p + 1, (long)s.Prefix) : s.T;
        if (end > s.T) end = s.T;
        long start = (long)split * chunk;
        long stop = Math.Min(end, start + chunk);
        float m = float.NegativeInfinity, l = 0;
        float o0 = 0, o1 = 0, o2 = 0, o3 = 0, o4 = 0, o5 = 0, o6 = 0, o7 = 0;
        for (long t0 = start; t0 < stop; t0 += Lanes)
        {
            if (s.Window > 0 && t0 >= s.Sinks && p - (t0 + Lanes - 1) >= s.Window) continue;
            long j = t0 + lane;
            float score = float.NegativeInfinity;
            if (j < stop && Visible(j, p, s))
            {
                long ko = (((long)b * s.T + j) * s.Hkv + kvh) * s.D;
                float dot = 0;
                for (int d = 0; d < s.D; d++) dot += qs[d] * k[ko + d];
                score = s.Scale * dot;
                if (s.HasBias != 0) score += bias[(long)b * s.BiasB + (long)h * s.BiasH + j * s.BiasJ];
            }
            float tileMax = score;
            for (int offset = Lanes / 2; offset > 0; offset /= 2) tileMax = Math.Max(tileMax, Warp.ShuffleXor(tileMax, offset));
            float newM = Math.Max(m, tileMax);
            if (newM == float.NegativeInfinity) continue;
            float alpha = m == float.NegativeInfinity ? 0f : DeviceMath.Exp(m - newM);
            float pj = score == float.NegativeInfinity ? 0f : DeviceMath.Exp(score - newM);
            ps[lane] = pj;
            float tileSum = pj;
            for (int offset = Lanes / 2; offset > 0; offset /= 2) tileSum += Warp.ShuffleXor(tileSum, offset);
            Group.Barrier();
            o0 *= alpha; o1 *= alpha; o2 *= alpha; o3 *= alpha; o4 *= alpha; o5 *= alpha; o6 *= alpha; o7 *= alpha;
            for (int x = 0; x < Lanes && t0 + x < stop; x++)
            {
                float w = ps[x];
                if (w == 0f) continue;
                long vo = (((long)b * s.T + t0 + x) * s.Hkv + kvh) * s.Dv;
                if (lane < s.Dv) o0 += w * v[vo + lane];
                if (lane + 32 < s.Dv) o1 += w * v[vo + lane + 32];
                if (lane + 64 < s.Dv) o2 += w * v[vo + lane + 64];
                if (lane + 96 < s.Dv) o3 += w * v[vo + lane + 96];
                if (lane + 128 < s.Dv) o4 += w * v[vo + lane + 128];
                if (lane + 160 < s.Dv) o5 += w * v[vo + lane + 160];
                if (lane + 192 < s.Dv) o6 += w * v[vo + lane + 192];
                if (lane + 224 < s.Dv) o7 += w * v[vo + lane + 224];
            }
            l = l * alpha + tileSum;
            m = newM;
            Group.Barrier();
        }
        long so = ((long)row * splits + split) * (s.Dv + 2);
        if (lane < s.Dv) scratch[so + lane] = o0;
        if (lane + 32 < s.Dv) scratch[so + lane + 32] = o1;
        if (lane + 64 < s.Dv) scratch[so + lane + 64] = o2;
        if (lane + 96 < s.Dv) scratch[so + lane + 96] = o3;
        if (lane + 128 < s.Dv) scratch[so + lane + 128] = o4;
        if (lane + 160 < s.Dv) scratch[so + lane + 160] = o5;
        if (lane + 192 < s.Dv) scratch[so + lane + 192] = o6;
        if (lane + 224 < s.Dv) scratch[so + lane + 224] = o7;
        if (lane == 0)
        {
            scratch[so + s.Dv] = m;
            scratch[so + s.Dv + 1] = l;
        }
    }

    /// <summary>o[row, :] = Σ_split e^(m_split − M) · o_split / Σ_split e^(m_split − M) · l_split; zero when no key is visible.</summary>
    public static void Combine(ArrayView<float> scratch, ArrayView<float> o, int dv, int splits)
    {
        int row = Grid.IdxX;
        long rowBase = (long)row * splits * (dv + 2);
        float top = float.NegativeInfinity;
        for (int x = 0; x < splits; x++) top = Math.Max(top, scratch[rowBase + x * (dv + 2) + dv]);
        float total = 0;
        for (int x = 0; x < splits; x++)
        {
            float mx = scratch[rowBase + x * (dv + 2) + dv];
            if (mx != float.NegativeInfinity) total += DeviceMath.Exp(mx - top) * scratch[rowBase + x * (dv + 2) + dv + 1];
        }
        float inv = total > 0 ? 1f / total : 0f;
        for (int d = Group.IdxX; d < dv; d += Group.DimX)
        {
            float acc = 0;
            for (int x = 0; x < splits; x++)
            {
                float mx = scratch[rowBase + x * (dv + 2) + dv];
                if (mx != float.NegativeInfinity) acc += DeviceMath.Exp(mx - top) * scratch[rowBase + x * (dv + 2) + d];
            }
            o[(long)row * dv + d] = acc * inv;
        }
    }

    private static bool Visible(long j, long p, AttentionShape s)
    {
        if (s.Mask == 1 && j > p) return false;
        if (s.Mask == 2 && !(j < s.Prefix || j <= p)) return false;
        if (s.Window > 0 && p - j >= s.Window && j >= s.Sinks) return false;
        return true;
    }
}
