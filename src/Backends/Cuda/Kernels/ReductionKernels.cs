// NaN tests are written v != v: the same comparison on both accelerators.
#pragma warning disable CS1718
using ILGPU;
using ILGPU.Runtime;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>Row reductions: one group per row, the group's threads striding over it and reducing through shared memory.</summary>
public static class ReductionKernels
{
    /// <summary>The most threads a reduction group may have (the shared scratch's size).</summary>
    public const int MaxGroup = 256;

    /// <summary>Sum of v over the group (every thread gets it). Group size must be a power of two ≤ <see cref="MaxGroup"/>.</summary>
    internal static float GroupSum(ArrayView<float> scratch, float v)
    {
        int t = Group.IdxX;
        scratch[t] = v;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half /= 2)
        {
            if (t < half) scratch[t] += scratch[t + half];
            Group.Barrier();
        }
        float total = scratch[0];
        Group.Barrier();
        return total;
    }

    /// <summary>Max of v over the group (every thread gets it); as <see cref="GroupSum"/>.</summary>
    internal static float GroupMax(ArrayView<float> scratch, float v)
    {
        int t = Group.IdxX;
        scratch[t] = v;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half /= 2)
        {
            if (t < half) scratch[t] = Math.Max(scratch[t], scratch[t + half]);
            Group.Barrier();
        }
        float total = scratch[0];
        Group.Barrier();
        return total;
    }

    /// <summary>
    /// RMSNorm (layer = 0): x/sqrt(mean(x²)+eps)·(offset+w) (+b); LayerNorm (layer = 1): (x−mean)/sqrt(var+eps)·w + b,
    /// two-pass as the interpreter. hasW/hasB say whether w/b are real.
    /// </summary>
    public static void Norm(ArrayView<float> x, ArrayView<float> w, ArrayView<float> b, ArrayView<float> y, int d, float eps, float offset, int layer, int hasW, int hasB)
    {
        var scratch = SharedMemory.Allocate<float>(MaxGroup);
        int row = Grid.IdxX;
        long o = (long)row * d;
        float mean = 0;
        if (layer != 0)
        {
            float s = 0;
            for (int i = Group.IdxX; i < d; i += Group.DimX) s += x[o + i];
            mean = GroupSum(scratch, s) / d;
        }
        float sq = 0;
        for (int i = Group.IdxX; i < d; i += Group.DimX)
        {
            float c = x[o + i] - mean;
            sq += c * c;
        }
        float inv = 1f / DeviceMath.Sqrt(GroupSum(scratch, sq) / d + eps);
        for (int i = Group.IdxX; i < d; i += Group.DimX)
        {
            float v = (x[o + i] - mean) * inv;
            if (hasW != 0) v *= offset + w[i];
            if (hasB != 0) v += b[i];
            y[o + i] = v;
        }
    }

    /// <summary>
    /// Softmax (mean = 0) or mean (mean = 1) along one axis: row r is the line starting at (r / inner)·inner·length + r % inner
    /// with stride inner; a mean writes y[r].
    /// </summary>
    public static void Line(ArrayView<float> x, ArrayView<float> y, int length, int inner, int mean)
    {
        var scratch = SharedMemory.Allocate<float>(MaxGroup);
        int r = Grid.IdxX;
        long start = (long)(r / inner) * inner * length + r % inner;
        if (mean != 0)
        {
            float s = 0;
            for (int i = Group.IdxX; i < length; i += Group.DimX) s += x[start + (long)i * inner];
            float total = GroupSum(scratch, s);
            if (Group.IdxX == 0) y[r] = total / length;
            return;
        }
        float m = float.NegativeInfinity;
        for (int i = Group.IdxX; i < length; i += Group.DimX) m = Math.Max(m, x[start + (long)i * inner]);
        m = GroupMax(scratch, m);
        float sum = 0;
        for (int i = Group.IdxX; i < length; i += Group.DimX) sum += DeviceMath.Exp(x[start + (long)i * inner] - m);
        sum = GroupSum(scratch, sum);
        for (int i = Group.IdxX; i < length; i += Group.DimX)
        {
            long at = start + (long)i * inner;
            y[at] = DeviceMath.Exp(x[at] - m) / sum;
        }
    }

    /// <summary>
    /// Greedy sampling on the device: the index of the largest x[offset + i], i &lt; n, skipping ids with mask[i] ≠ 0;
    /// ties and NaN as <see cref="GreedyDecoder.ArgMax"/> (the lowest index wins; NaN never beats a number). One group.
    /// </summary>
    public static void ArgMax(ArrayView<float> x, ArrayView<int> mask, ArrayView<int> result, int offset, int n)
    {
        var values = SharedMemory.Allocate<float>(MaxGroup);
        var indices = SharedMemory.Allocate<int>(MaxGroup);
        int t = Group.IdxX;
        float best = 0;
        int bestAt = -1;
        for (int i = t; i < n; i += Group.DimX)
        {
            if (mask[i] != 0) continue;
            float v = x[offset + i];
            if (Better(v, i, best, bestAt)) { best = v; bestAt = i; }
        }
        values[t] = best;
        indices[t] = bestAt;
        Group.Barrier();
        for (int half = Group.DimX / 2; half > 0; half /= 2)
        {
            if (t < half && Better(values[t + half], indices[t + half], values[t], indices[t]))
            {
                values[t] = values[t + half];
                indices[t] = indices[t + half];
            }
            Group.Barrier();
        }
        if (t == 0) result[0] = indices[0];
    }

    private static bool Better(float v, int at, float best, int bestAt)
    {
        if (at < 0) return false;
        if (bestAt < 0) return true;
        bool vNaN = v != v, bestNaN = best != best;
        if (vNaN && bestNaN) return at < bestAt;
        if (vNaN) return false;
        if (bestNaN) return true;
        return v > best || (v == best && at < bestAt);
    }
}
