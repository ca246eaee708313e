using ModelCompiler.IR;
using ModelCompiler.Runtime;

namespace ModelCompiler.Backends.Reference.Ops;

/// <summary>Token embeddings and every kind of position information: positions, sinusoids, RoPE, ALiBi, T5 buckets.</summary>
internal static class Positional
{
    /// <summary>table rows gathered by id: ids[...] → [..., D].</summary>
    public static RefTensor Embedding(Node node, RefTensor ids, RefTensor table)
    {
        long rows = table.Shape[0];
        // A vocab-parallel shard holds rows offset..offset+rows-1 of a vocab-row table; other valid ids embed as zeros.
        long offset = node.Attrs.Int("offset", 0), vocab = node.Attrs.Int("vocab", rows);
        int d = (int)table.Shape[1];
        var shape = ids.Shape.Append(d).ToArray();
        var idv = ids.I!;
        var data = new double[Layout.Count(shape)];
        for (int t = 0; t < idv.Length; t++)
        {
            long id = idv[t];
            if (id < 0 || id >= vocab)
                throw new McException($"{Interpreter.Describe(node)}: token id {id} is outside the table's {vocab} rows");
            long row = id - offset;
            if (row >= 0 && row < rows) Array.Copy(table.F!, row * d, data, (long)t * d, d);
        }
        return RefTensor.FromFloats(shape, data, node.Type.DType);
    }

    /// <summary>offset, offset+1, ... as many as x has along axis; a past (a KV cache) moves the offset by its length.</summary>
    public static RefTensor Positions(Node node, RefTensor x, RefTensor? past = null)
    {
        int axis = Layout.Axis(node.Attrs.Int("axis"), x.Rank, node);
        long offset = node.Attrs.Int("offset", 0) + (past is null ? 0 : past.Shape[axis]);
        var r = new long[x.Shape[axis]];
        for (int i = 0; i < r.Length; i++) r[i] = offset + i;
        return new RefTensor(DType.I64, [r.Length], null, r);
    }

    /// <summary>
    /// The Transformer paper's sinusoids with inv_i = base^(−2i/dim): interleaved puts sin/cos of frequency i
    /// at columns 2i, 2i+1; otherwise sin at i and cos at i + dim/2.
    /// </summary>
    public static RefTensor SinusoidalPositions(Node node, RefTensor pos)
    {
        long dim = node.Attrs.Int("dim");
        double theta = node.Attrs.Float("base", 10000.0);
        bool interleaved = node.Attrs.Bool("interleaved", true);
        var p = pos.I!;
        long half = dim / 2;
        var pe = new double[Layout.Count([p.Length, dim])];
        for (int s = 0; s < p.Length; s++)
            for (long i = 0; i < half; i++)
            {
                double angle = p[s] * Math.Pow(theta, -2.0 * i / dim);
                long sinAt = interleaved ? 2 * i : i, cosAt = interleaved ? 2 * i + 1 : i + half;
                pe[s * dim + sinAt] = Math.Sin(angle);
                pe[s * dim + cosAt] = Math.Cos(angle);
            }
        return new RefTensor(node.Type.DType, [p.Length, dim], pe, null);
    }

    /// <summary>Rotary embeddings on x[B, S, H, D] (see the op table for the scaling variants).</summary>
    public static RefTensor Rope(Node node, RefTensor x, RefTensor pos, long? cachedPrefixLength = null)
    {
        var a = node.Attrs;
        double theta = a.Float("theta");
        long rd = a.Int("rotary_dim");
        bool interleaved = a.Bool("interleaved", false);
        string scaling = a.Str("scaling", "none");
        double factor = a.Float("factor", 1.0);
        long originalMax = a.Int("original_max_positions", 0);
        long B = x.Shape[0], S = x.Shape[1], H = x.Shape[2], D = x.Shape[3];
        if (rd <= 0 || rd % 2 != 0 || rd > D)
            throw new InvalidOperationException($"{Interpreter.Describe(node)}: rotary_dim {rd} must be even and at most head_dim {D}");
        var p = pos.I!;

        double baseFreq = theta;
        double positionDivisor = 1.0;
        Func<long, double>? basePerPosition = null;
        switch (scaling)
        {
            case "none":
                break;
            case "linear":
                positionDivisor = factor; // positions interpolated into the trained range
                break;
            case "dynamic":
            {
                // NTK-aware dynamic scaling: the base grows once the sequence passes the trained length.
                if (originalMax <= 0)
                    throw new McException($"{Interpreter.Describe(node)}: dynamic rope scaling needs original_max_positions > 0");
                double Base(long length) => length > originalMax
                    ? theta * Math.Pow(factor * length / originalMax - (factor - 1), (double)rd / (rd - 2))
                    : theta;
                if (cachedPrefixLength is { } prefix)
                    basePerPosition = position => Base(Math.Max(prefix, position + 1));   // as a KV cache would hold it
                else
                    baseFreq = Base(p.Length == 0 ? 0 : p.Max() + 1);                      // one forward over the whole sequence
                break;
            }
            default:
                throw new McException($"{Interpreter.Describe(node)}: unknown rope scaling '{scaling}' (expected none, linear or dynamic)");
        }

        long half = rd / 2;
        var cos = new double[S * half];
        var sin = new double[S * half];
        for (long s = 0; s < S; s++)
            for (long i = 0; i < half; i++)
            {
                double angle = p[s] / positionDivisor * Math.Pow(basePerPosition?.Invoke(p[s]) ?? baseFreq, -2.0 * i / rd);
                cos[s * half + i] = Math.Cos(angle);
                sin[s * half + i] = Math.Sin(angle);
            }

        var xs = x.F!;
        var y = (double[])xs.Clone(); // dims ≥ rotary_dim pass through
        for (long b = 0; b < B; b++)
            for (long s = 0; s < S; s++)
                for (long h = 0; h < H; h++)
                {
                    long o = ((b * S + s) * H + h) * D;
                    for (long i = 0; i < half; i++)
                    {
                        long ia = interleaved ? o + 2 * i : o + i;
                        long ib = interleaved ? o + 2 * i + 1 : o + i + half;
                        double c = cos[s * half + i], sn = sin[s * half + i];
                        y[ia] = xs[ia] * c - xs[ib] * sn;
                        y[ib] = xs[ib] * c + xs[ia] * sn;
                    }
                }
        return new RefTensor(node.Type.DType, x.Shape, y, null);
    }

    /// <summary>ALiBi: bias[0, h, i, j] = slope_h · (kpos[j] − qpos[i]).</summary>
    public static RefTensor AlibiBias(Node node, RefTensor qpos, RefTensor kpos)
    {
        long heads = node.Attrs.Int("heads");
        var slopes = AlibiSlopes(heads);
        var q = qpos.I!;
        var k = kpos.I!;
        long[] shape = [1, heads, q.Length, k.Length];
        var bias = new double[Layout.Count(shape)];
        int at = 0;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < q.Length; i++)
                for (int j = 0; j < k.Length; j++)
                    bias[at++] = slopes[h] * (k[j] - q[i]);
        return new RefTensor(node.Type.DType, shape, bias, null);
    }

    /// <summary>
    /// The ALiBi slopes of Hugging Face BLOOM's build_alibi_tensor: for n = 2^floor(log2 H), base^1..base^n
    /// with base = 2^(−8/n); any further heads take the odd powers of 2^(−8/(2n)).
    /// </summary>
    public static double[] AlibiSlopes(long heads)
    {
        if (heads <= 0) throw new McException($"alibi_bias needs heads > 0, got {heads}");
        long n = 1;
        while (n * 2 <= heads) n *= 2;
        var slopes = new double[heads];
        double b = Math.Pow(2, -8.0 / n);
        for (long h = 0; h < n; h++) slopes[h] = Math.Pow(b, h + 1);
        double extra = Math.Pow(2, -8.0 / (2 * n));
        for (long h = n; h < heads; h++) slopes[h] = Math.Pow(extra, 2 * (h - n) + 1);
        return slopes;
    }

    /// <summary>T5: bias[0, h, i, j] = table[bucket(kpos[j] − qpos[i]), h].</summary>
    public static RefTensor RelativePositionBias(Node node, RefTensor table, RefTensor qpos, RefTensor kpos)
    {
        bool bidirectional = node.Attrs.Bool("bidirectional");
        long buckets = node.Attrs.Int("num_buckets");
        long maxDistance = node.Attrs.Int("max_distance");
        long heads = table.Shape[1];
        var q = qpos.I!;
        var k = kpos.I!;
        var t = table.F!;
        long[] shape = [1, heads, q.Length, k.Length];
        var bias = new double[Layout.Count(shape)];
        for (int i = 0; i < q.Length; i++)
            for (int j = 0; j < k.Length; j++)
            {
                long bucket = RelativeBucket(k[j] - q[i], bidirectional, buckets, maxDistance);
                for (int h = 0; h < heads; h++)
                    bias[(h * q.Length + i) * k.Length + j] = t[bucket * heads + h];
            }
        return new RefTensor(node.Type.DType, shape, bias, null);
    }

    /// <summary>
    /// Hugging Face T5's _relative_position_bucket for rel = memory − context. The logarithmic part is
    /// computed in float32, as PyTorch does, so bucket boundaries agree exactly.
    /// </summary>
    public static long RelativeBucket(long rel, bool bidirectional, long numBuckets, long maxDistance)
    {
        long bucket = 0;
        long nb = numBuckets;
        if (bidirectional)
        {
            nb /= 2;
            if (rel > 0) bucket += nb;
            rel = Math.Abs(rel);
        }
        else
        {
            rel = -Math.Min(rel, 0);
        }
        long maxExact = nb / 2;
        if (rel < maxExact) return bucket + rel;
        // torch.log(rel.float() / max_exact) / math.log(max_distance / max_exact) * (nb − max_exact), all float32.
        float logRatio = MathF.Log((float)rel / maxExact);
        float logRange = (float)Math.Log((double)maxDistance / maxExact);
        float scaled = logRatio / logRange * (nb - maxExact);
        long large = maxExact + (long)scaled;
        return bucket + Math.Min(large, nb - 1);
    }
}
