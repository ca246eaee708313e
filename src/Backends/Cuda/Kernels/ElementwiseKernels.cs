using ILGPU;
using ILGPU.Runtime;

namespace ModelCompiler.Backends.Cuda.Kernels;

/// <summary>
/// A rank-≤6 index map: for element e of a row-major output of shape D, source offsets A and B
/// (ABase + Σ idx·A, BBase + Σ idx·B). Transposes, slices, broadcasts and concatenation slots are all such maps.
/// Leading unused dims have size 1.
/// </summary>
public struct StridedMap
{
    public int D0, D1, D2, D3, D4, D5;
    public int A0, A1, A2, A3, A4, A5;
    public int B0, B1, B2, B3, B4, B5;
    public int ABase, BBase;

    public static StridedMap Create(long[] shape, long[] aStrides, long aBase, long[] bStrides, long bBase)
    {
        if (shape.Length > 6) throw new Runtime.McException($"the cuda target handles tensors of rank up to 6, got rank {shape.Length}");
        var d = new int[6];
        var a = new int[6];
        var b = new int[6];
        int pad = 6 - shape.Length;
        for (int i = 0; i < 6; i++)
        {
            d[i] = i < pad ? 1 : checked((int)shape[i - pad]);
            a[i] = i < pad ? 0 : checked((int)aStrides[i - pad]);
            b[i] = i < pad ? 0 : checked((int)bStrides[i - pad]);
        }
        return new StridedMap
        {
            D0 = d[0], D1 = d[1], D2 = d[2], D3 = d[3], D4 = d[4], D5 = d[5],
            A0 = a[0], A1 = a[1], A2 = a[2], A3 = a[3], A4 = a[4], A5 = a[5],
            B0 = b[0], B1 = b[1], B2 = b[2], B3 = b[3], B4 = b[4], B5 = b[5],
            ABase = checked((int)aBase), BBase = checked((int)bBase),
        };
    }

    public int OffsetA(int e)
    {
        int i5 = e % D5; e /= D5; int i4 = e % D4; e /= D4; int i3 = e % D3; e /= D3;
        int i2 = e % D2; e /= D2; int i1 = e % D1; e /= D1;
        return ABase + e * A0 + i1 * A1 + i2 * A2 + i3 * A3 + i4 * A4 + i5 * A5;
    }

    public int OffsetB(int e)
    {
        int i5 = e % D5; e /= D5; int i4 = e % D4; e /= D4; int i3 = e % D3; e /= D3;
        int i2 = e % D2; e /= D2; int i1 = e % D1; e /= D1;
        return BBase + e * B0 + i1 * B1 + i2 * B2 + i3 * B3 + i4 * B4 + i5 * B5;
    }
}

/// <summary>Elementwise and data-movement kernels (grid-stride loops over the output's elements).</summary>
public static class ElementwiseKernels
{
    public static void Unary(ArrayView<float> x, ArrayView<float> y, int n, int code)
    {
        for (int e = Grid.GlobalIndex.X; e < n; e += Grid.DimX * Group.DimX)
            y[e] = DeviceMath.Activate(x[e], code);
    }

    /// <summary>y[e] = a[map.A(e)] ∘ b[map.B(e)]: numpy broadcasting through zero strides.</summary>
    public static void Binary(ArrayView<float> a, ArrayView<float> b, ArrayView<float> y, StridedMap map, int n, int code)
    {
        for (int e = Grid.GlobalIndex.X; e < n; e += Grid.DimX * Group.DimX)
            y[e] = BinaryCode.Apply(a[map.OffsetA(e)], b[map.OffsetB(e)], code);
    }

    /// <summary>dst[map.B(e)] = src[map.A(e)].</summary>
    public static void Copy(ArrayView<float> src, ArrayView<float> dst, StridedMap map, int n)
    {
        for (int e = Grid.GlobalIndex.X; e < n; e += Grid.DimX * Group.DimX)
            dst[map.OffsetB(e)] = src[map.OffsetA(e)];
    }

    /// <summary>out[t, :] = table[ids[t], :] (ids checked against the table on the host).</summary>
    public static void Embedding(ArrayView<int> ids, ArrayView<float> table, ArrayView<float> output, int n, int d)
    {
        for (int e = Grid.GlobalIndex.X; e < n; e += Grid.DimX * Group.DimX)
            output[e] = table[ids[e / d] * d + e % d];
    }

    /// <summary>
    /// The fused linear's gated epilogue over y[rows, 2n]: out = residual + act(y[:, :n]) · y[:, n:]
    /// (or without gate: residual + act(y)). The ungated case without a residual never comes here (the GEMM fuses it).
    /// </summary>
    public static void GateEpilogue(ArrayView<float> y, ArrayView<float> residual, ArrayView<float> output, int rows, int n, int activation, int gate, int hasResidual)
    {
        int total = rows * n;
        int width = gate != 0 ? 2 * n : n;
        for (int e = Grid.GlobalIndex.X; e < total; e += Grid.DimX * Group.DimX)
        {
            int r = e / n, c = e % n;
            float v = DeviceMath.Activate(y[r * width + c], activation);
            if (gate != 0) v *= y[r * width + n + c];
            if (hasResidual != 0) v = residual[e] + v;
            output[e] = v;
        }
    }

    /// <summary>RoPE with host-made cos/sin tables [S, half]: x, y [B, S, H, D]; dims ≥ 2·half pass through.</summary>
    public static void Rope(ArrayView<float> x, ArrayView<float> cos, ArrayView<float> sin, ArrayView<float> y, int n, int s, int h, int d, int half, int interleaved)
    {
        for (int e = Grid.GlobalIndex.X; e < n; e += Grid.DimX * Group.DimX)
        {
            int dim = e % d;
            int pos = e / (d * h) % s;
            float v = x[e];
            if (dim < 2 * half)
            {
                int i, partner;
                bool first;
                if (interleaved != 0) { i = dim / 2; first = (dim & 1) == 0; partner = first ? e + 1 : e - 1; }
                else { first = dim < half; i = first ? dim : dim - half; partner = first ? e + half : e - half; }
                float c = cos[pos * half + i], sn = sin[pos * half + i];
                v = first ? v * c - x[partner] * sn : v * c + x[partner] * sn;
            }
            y[e] = v;
        }
    }

    /// <summary>ALiBi: out[h, i, j] = slope[h]·(kpos[j] − qpos[i]).</summary>
    public static void AlibiBias(ArrayView<float> slopes, ArrayView<float> qpos, ArrayView<float> kpos, ArrayView<float> output, int heads, int s, int t)
    {
        int total = heads * s * t;
        for (int e = Grid.GlobalIndex.X; e < total; e += Grid.DimX * Group.DimX)
        {
            int j = e % t, i = e / t % s, hh = e / (t * s);
            output[e] = slopes[hh] * (kpos[j] - qpos[i]);
        }
    }

    /// <summary>T5 bias: out[h, i, j] = table[bucket[i, j], h] (buckets computed on the host from the positions).</summary>
    public static void BucketBias(ArrayView<float> table, ArrayView<int> buckets, ArrayView<float> output, int heads, int s, int t)
    {
        int total = heads * s * t;
        for (int e = Grid.GlobalIndex.X; e < total; e += Grid.DimX * Group.DimX)
        {
            int ij = e % (s * t), hh = e / (s * t);
            output[e] = table[buckets[ij] * heads + hh];
        }
    }

    /// <summary>
    /// Mixture of experts over experts stacked as [E, rows·d]: out[r, c] = Σ over the top_k experts (by softmax prob,
    /// ties to the lower index) of w_x·y_x[r, c]; w renormalised over the chosen when normalize. E is small, so each
    /// thread ranks the experts itself.
    /// </summary>
    public static void MoeCombine(ArrayView<float> logits, ArrayView<float> experts, ArrayView<float> output, int rows, int e, int d, int topK, int normalize)
    {
        int total = rows * d;
        for (int idx = Grid.GlobalIndex.X; idx < total; idx += Grid.DimX * Group.DimX)
        {
            int r = idx / d, c = idx % d;
            float max = float.NegativeInfinity;
            for (int x = 0; x < e; x++) max = Math.Max(max, logits[r * e + x]);
            float sum = 0;
            for (int x = 0; x < e; x++) sum += DeviceMath.Exp(logits[r * e + x] - max);
            float chosenSum = 0, acc = 0;
            for (int x = 0; x < e; x++)
            {
                float px = DeviceMath.Exp(logits[r * e + x] - max) / sum;
                int rank = 0;
                for (int z = 0; z < e; z++)
                {
                    float pz = DeviceMath.Exp(logits[r * e + z] - max) / sum;
                    if (pz > px || (pz == px && z < x)) rank++;
                }
                if (rank < topK)
                {
                    chosenSum += px;
                    acc += px * experts[(long)x * total + idx];
                }
            }
            output[idx] = normalize != 0 ? acc / chosenSum : acc;
        }
    }
}
