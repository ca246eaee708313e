using ILGPU;
using ILGPU.Runtime;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>Attention's shapes, masks and bias strides (q[B,S,Hq,D], k[B,T,Hkv,D], v[B,T,Hkv,Dv], contiguous).</summary>
public struct AttentionShape
{
    public int B, S, Hq, D, T, Hkv, Dv;
    public float Scale;

    /// <summary>0 none, 1 causal, 2 prefix (as <c>AttentionOps.Visible</c>).</summary>
    public int Mask, Window, Sinks, Prefix;

    /// <summary>Bias element (b, h, i, j) at BiasB·b + BiasH·h + BiasI·i + BiasJ·j (zero strides broadcast).</summary>
    public int HasBias, BiasB, BiasH, BiasI, BiasJ;
}

/// <summary>
/// SIMT attention with the FlashAttention-2 recurrence: one warp per (batch, head, query), keys in tiles of 32 (one per
/// lane), an online softmax (running max and sum) rescaling the output accumulators held in registers (lane l owns
/// output dims l, l+32, …), so no S×T score matrix exists. Tiles that the mask or the sliding window hide entirely are
/// skipped; GQA reads the shared key/value head by index. Head dims up to 256.
/// </summary>
public static class AttentionKernels
{
    public const int Warp = 32, MaxHeadDim = 256;

    public static void Attention(ArrayView<float> q, ArrayView<float> k, ArrayView<float> v, ArrayView<float> bias, ArrayView<float> o, AttentionShape s)
    {
        var qs = SharedMemory.Allocate<float>(MaxHeadDim);
        var ps = SharedMemory.Allocate<float>(Warp);
        int lane = Group.IdxX;
        int row = Grid.IdxX;
        int i = row % s.S, h = row / s.S % s.Hq, b = row / s.S / s.Hq;
        int kvh = h / (s.Hq / s.Hkv);
        long p = i + (s.T - s.S);
        long qo = (((long)b * s.S + i) * s.Hq + h) * s.D;
        for (int d = lane; d < s.D; d += Warp) qs[d] = q[qo + d];
        Group.Barrier();

        // Keys past this bound are hidden by the mask.
        long end = s.Mask == 1 ? p + 1 : s.Mask == 2 ? Math.Max(p + 1, (long)s.Prefix) : s.T;
        if (end > s.T) end = s.T;
        float m = float.NegativeInfinity, l = 0;
        float o0 = 0, o1 = 0, o2 = 0, o3 = 0, o4 = 0, o5 = 0, o6 = 0, o7 = 0;
        for (int t0 = 0; t0 < end; t0 += Warp)
        {
            // A tile entirely outside the window (and past the sinks) is skipped; the branch is uniform over the warp.
            if (s.Window > 0 && t0 >= s.Sinks && p - (t0 + Warp - 1) >= s.Window) continue;
            int j = t0 + lane;
            float score = float.NegativeInfinity;
            if (j < end && Visible(j, p, s))
            {
                long ko = (((long)b * s.T + j) * s.Hkv + kvh) * s.D;
                float dot = 0;
                for (int d = 0; d < s.D; d++) dot += qs[d] * k[ko + d];
                score = s.Scale * dot;
                if (s.HasBias != 0) score += bias[(long)b * s.BiasB + (long)h * s.BiasH + (long)i * s.BiasI + (long)j * s.BiasJ];
            }
            ps[lane] = score;
            Group.Barrier();
            float tileMax = float.NegativeInfinity;
            for (int x = 0; x < Warp; x++) tileMax = Math.Max(tileMax, ps[x]);
            float newM = Math.Max(m, tileMax);
            Group.Barrier();
            if (newM == float.NegativeInfinity) continue; // nothing visible yet
            float alpha = m == float.NegativeInfinity ? 0f : DeviceMath.Exp(m - newM);
            ps[lane] = score == float.NegativeInfinity ? 0f : DeviceMath.Exp(score - newM);
            Group.Barrier();
            float tileSum = 0;
            o0 *= alpha; o1 *= alpha; o2 *= alpha; o3 *= alpha; o4 *= alpha; o5 *= alpha; o6 *= alpha; o7 *= alpha;
            for (int x = 0; x < Warp && t0 + x < end; x++)
            {
                float pj = ps[x];
                if (pj == 0f) continue;
                tileSum += pj;
                long vo = (((long)b * s.T + t0 + x) * s.Hkv + kvh) * s.Dv;
                if (lane < s.Dv) o0 += pj * v[vo + lane];
                if (lane + 32 < s.Dv) o1 += pj * v[vo + lane + 32];
                if (lane + 64 < s.Dv) o2 += pj * v[vo + lane + 64];
                if (lane + 96 < s.Dv) o3 += pj * v[vo + lane + 96];
                if (lane + 128 < s.Dv) o4 += pj * v[vo + lane + 128];
                if (lane + 160 < s.Dv) o5 += pj * v[vo + lane + 160];
                if (lane + 192 < s.Dv) o6 += pj * v[vo + lane + 192];
                if (lane + 224 < s.Dv) o7 += pj * v[vo + lane + 224];
            }
            l = l * alpha + tileSum;
            m = newM;
            Group.Barrier();
        }
        // No visible key: the row is zero (as the interpreter), not NaN.
        float inv = l > 0 ? 1f / l : 0f;
        long oo = (((long)b * s.S + i) * s.Hq + h) * s.Dv;
        if (lane < s.Dv) o[oo + lane] = o0 * inv;
        if (lane + 32 < s.Dv) o[oo + lane + 32] = o1 * inv;
        if (lane + 64 < s.Dv) o[oo + lane + 64] = o2 * inv;
        if (lane + 96 < s.Dv) o[oo + lane + 96] = o3 * inv;
        if (lane + 128 < s.Dv) o[oo + lane + 128] = o4 * inv;
        if (lane + 160 < s.Dv) o[oo + lane + 160] = o5 * inv;
        if (lane + 192 < s.Dv) o[oo + lane + 192] = o6 * inv;
        if (lane + 224 < s.Dv) o[oo + lane + 224] = o7 * inv;
    }

    private static bool Visible(long j, long p, AttentionShape s)
    {
        if (s.Mask == 1 && j > p) return false;
        if (s.Mask == 2 && !(j < s.Prefix || j <= p)) return false;
        if (s.Window > 0 && p - j >= s.Window && j >= s.Sinks) return false;
        return true;
    }
}
