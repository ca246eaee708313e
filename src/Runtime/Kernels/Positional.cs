namespace ModelCompiler.Runtime.Kernels;

/// <summary>The scaling variants of rotary embeddings.</summary>
public enum RopeScaling { None, Linear, Dynamic }

/// <summary>
/// Token embeddings and position information: sinusoids, RoPE (all scalings), ALiBi, T5 buckets, and the
/// variants' xPos and Transformer-XL relative scores. Angles, slopes and scales are computed in double as the
/// reference does; results are stored as float32.
/// </summary>
public static class Positional
{
    /// <summary>
    /// A vocab-parallel shard: the table holds rows <paramref name="offset"/>.. of a <paramref name="vocab"/>-row table;
    /// ids of other rows embed as zeros (the ranks' sum is the embedding).
    /// </summary>
    public static void EmbeddingShard(ReadOnlySpan<long> ids, ReadOnlySpan<float> table, int rows, int dim, long offset, long vocab, Span<float> y, string where)
    {
        for (int t = 0; t < ids.Length; t++)
        {
            long id = ids[t];
            if (id < 0 || id >= vocab)
                throw new McException($"{where}: token id {id} is outside the table's {vocab} rows");
            long row = id - offset;
            if (row >= 0 && row < rows) table.Slice((int)row * dim, dim).CopyTo(y.Slice(t * dim, dim));
            else y.Slice(t * dim, dim).Clear();
        }
    }

    /// <summary>y[t, :] = table[ids[t], :] for a [vocab, dim] table; an id outside the table is the caller's error.</summary>
    public static void Embedding(ReadOnlySpan<long> ids, ReadOnlySpan<float> table, int vocab, int dim, Span<float> y, string where)
    {
        for (int t = 0; t < ids.Length; t++)
        {
            long id = ids[t];
            if (id < 0 || id >= vocab)
                throw new McException($"{where}: token id {id} is outside the table's {vocab} rows");
            table.Slice((int)id * dim, dim).CopyTo(y.Slice(t * dim, dim));
        }
    }

    /// <summary>
    /// pe[s, :] for positions pos: inv_i = base^(−2i/dim); interleaved puts sin/cos at 2i, 2i+1, else at i and
    /// i + dim/2. An odd dim's last column is 0.
    /// </summary>
    public static void SinusoidalPositions(ReadOnlySpan<long> pos, int dim, double baseFrequency, bool interleaved, Span<float> y)
    {
        y.Clear();
        int half = dim / 2;
        for (int s = 0; s < pos.Length; s++)
            for (int i = 0; i < half; i++)
            {
                double angle = pos[s] * Math.Pow(baseFrequency, -2.0 * i / dim);
                int sinAt = interleaved ? 2 * i : i, cosAt = interleaved ? 2 * i + 1 : i + half;
                y[s * dim + sinAt] = (float)Math.Sin(angle);
                y[s * dim + cosAt] = (float)Math.Cos(angle);
            }
    }

    /// <summary>
    /// Rotary embeddings on x[B, S, H, D] at positions pos[S]: pairs (i, i + rd/2) (or (2i, 2i+1) when interleaved)
    /// rotated by pos·base^(−2i/rd); dims ≥ rotary_dim pass through. Linear scaling divides positions by the factor;
    /// dynamic (NTK) grows the base past the trained length: base·(factor·L/orig − (factor − 1))^(rd/(rd−2)) with
    /// L = max position + 1, or, given <paramref name="cachedPrefixLength"/>, L = max(prefix, p + 1) per position
    /// (each key keeps the base in force when a KV cache took it in, as Hugging Face does).
    /// </summary>
    public static void Rope(float[] x, ReadOnlySpan<long> pos, int batch, int seq, int heads, int headDim,
        double theta, int rotaryDim, bool interleaved, RopeScaling scaling, double factor, long originalMaxPositions,
        long? cachedPrefixLength, float[] y, string where)
    {
        if (rotaryDim <= 0 || rotaryDim % 2 != 0 || rotaryDim > headDim)
            throw new McException($"{where}: rotary_dim {rotaryDim} must be even and at most head_dim {headDim}");
        double baseFreq = theta, positionDivisor = 1.0;
        bool perPosition = false;
        long prefix = 0;
        double Base(long length) => length > originalMaxPositions
            ? theta * Math.Pow(factor * length / originalMaxPositions - (factor - 1), (double)rotaryDim / (rotaryDim - 2))
            : theta;
        switch (scaling)
        {
            case RopeScaling.None:
                break;
            case RopeScaling.Linear:
                positionDivisor = factor;
                break;
            case RopeScaling.Dynamic:
                if (originalMaxPositions <= 0)
                    throw new McException($"{where}: dynamic rope scaling needs original_max_positions > 0");
                if (cachedPrefixLength is { } p)
                {
                    perPosition = true;
                    prefix = p;
                }
                else
                {
                    long max = long.MinValue;
                    foreach (var v in pos) max = Math.Max(max, v);
                    baseFreq = Base(pos.Length == 0 ? 0 : max + 1);
                }
                break;
        }

        int half = rotaryDim / 2;
        var cos = new double[seq * half];
        var sin = new double[seq * half];
        for (int s = 0; s < seq; s++)
        {
            double b = perPosition ? Base(Math.Max(prefix, pos[s] + 1)) : baseFreq;
            for (int i = 0; i < half; i++)
            {
                double angle = pos[s] / positionDivisor * Math.Pow(b, -2.0 * i / rotaryDim);
                cos[s * half + i] = Math.Cos(angle);
                sin[s * half + i] = Math.Sin(angle);
            }
        }
        if (!ReferenceEquals(x, y)) Array.Copy(x, y, (long)batch * seq * heads * headDim);
        for (int b = 0; b < batch; b++)
            for (int s = 0; s < seq; s++)
                for (int h = 0; h < heads; h++)
                {
                    int o = ((b * seq + s) * heads + h) * headDim;
                    for (int i = 0; i < half; i++)
                    {
                        int ia = interleaved ? o + 2 * i : o + i;
                        int ib = interleaved ? o + 2 * i + 1 : o + i + half;
                        double c = cos[s * half + i], sn = sin[s * half + i];
                        double xa = x[ia], xb = x[ib];
                        y[ia] = (float)(xa * c - xb * sn);
                        y[ib] = (float)(xb * c + xa * sn);
                    }
                }
    }

    /// <summary>ALiBi: y[0, h, i, j] = slope_h·(kpos[j] − qpos[i]).</summary>
    public static void AlibiBias(ReadOnlySpan<long> qpos, ReadOnlySpan<long> kpos, int heads, Span<float> y)
    {
        var slopes = AlibiSlopes(heads);
        int at = 0;
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < qpos.Length; i++)
                for (int j = 0; j < kpos.Length; j++)
                    y[at++] = (float)(slopes[h] * (kpos[j] - qpos[i]));
    }

    /// <summary>BLOOM's slopes: for n = 2^floor(log2 H), base^1..base^n with base = 2^(−8/n); further heads the odd powers of 2^(−8/(2n)).</summary>
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

    /// <summary>T5: y[0, h, i, j] = table[bucket(kpos[j] − qpos[i]), h] for a [num_buckets, heads] table.</summary>
    public static void RelativePositionBias(ReadOnlySpan<float> table, int heads, ReadOnlySpan<long> qpos, ReadOnlySpan<long> kpos,
        bool bidirectional, long numBuckets, long maxDistance, Span<float> y)
    {
        int s = qpos.Length, t = kpos.Length;
        for (int i = 0; i < s; i++)
            for (int j = 0; j < t; j++)
            {
                long bucket = RelativeBucket(kpos[j] - qpos[i], bidirectional, numBuckets, maxDistance);
                for (int h = 0; h < heads; h++)
                    y[(h * s + i) * t + j] = table[(int)bucket * heads + h];
            }
    }

    /// <summary>Hugging Face T5's _relative_position_bucket for rel = memory − context (the log part in float32, as PyTorch).</summary>
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
        float logRatio = MathF.Log((float)rel / maxExact);
        float logRange = (float)Math.Log((double)maxDistance / maxExact);
        float scaled = logRatio / logRange * (nb - maxExact);
        long large = maxExact + (long)scaled;
        return bucket + Math.Min(large, nb - 1);
    }

    /// <summary>
    /// xPos on x[B, S, H, D]: RoPE at pos (pairs (2i, 2i+1) when interleaved, else (i, i + D/2)) times
    /// ζ_i^(±pos/scale_base), ζ_i = (2i + 0.4·D)/(1.4·D); the minus sign when downscale (keys).
    /// </summary>
    public static void Xpos(ReadOnlySpan<float> x, ReadOnlySpan<long> pos, int batch, int seq, int heads, int headDim,
        double theta, double scaleBase, bool downscale, bool interleaved, Span<float> y, string where)
    {
        if (headDim % 2 != 0 || !(scaleBase > 0))
            throw new McException($"{where}: xpos needs an even head_dim and scale_base > 0 (got {headDim}, {scaleBase})");
        int half = headDim / 2;
        var cos = new double[seq * half];
        var sin = new double[seq * half];
        var scale = new double[seq * half];
        for (int s = 0; s < seq; s++)
            for (int i = 0; i < half; i++)
            {
                double angle = pos[s] * Math.Pow(theta, -2.0 * i / headDim);
                double zeta = (2.0 * i + 0.4 * headDim) / (1.4 * headDim);
                cos[s * half + i] = Math.Cos(angle);
                sin[s * half + i] = Math.Sin(angle);
                scale[s * half + i] = Math.Pow(zeta, (downscale ? -pos[s] : pos[s]) / scaleBase);
            }
        for (int b = 0; b < batch; b++)
            for (int s = 0; s < seq; s++)
                for (int h = 0; h < heads; h++)
                {
                    int o = ((b * seq + s) * heads + h) * headDim;
                    for (int i = 0; i < half; i++)
                    {
                        int ia = interleaved ? o + 2 * i : o + i;
                        int ib = interleaved ? o + 2 * i + 1 : o + i + half;
                        double c = cos[s * half + i], sn = sin[s * half + i], k = scale[s * half + i];
                        double xa = x[ia], xb = x[ib];
                        y[ia] = (float)((xa * c - xb * sn) * k);
                        y[ib] = (float)((xb * c + xa * sn) * k);
                    }
                }
    }

    /// <summary>
    /// y[b, h, i, j] = Σ_d x[b, i, h, d]·table[qpos[i] − kpos[j], h, d] for x[B, S, H, D] and a [L, H, D] table;
    /// 0 where the distance has no row (negative or ≥ L).
    /// </summary>
    public static void RelativeScores(float[] x, float[] table, ReadOnlySpan<long> qpos, ReadOnlySpan<long> kpos,
        int batch, int seq, int heads, int headDim, int distances, float[] y)
    {
        int t = kpos.Length;
        for (int b = 0; b < batch; b++)
            for (int h = 0; h < heads; h++)
                for (int i = 0; i < seq; i++)
                    for (int j = 0; j < t; j++)
                    {
                        long distance = qpos[i] - kpos[j];
                        int at = ((b * heads + h) * seq + i) * t + j;
                        if (distance < 0 || distance >= distances) { y[at] = 0; continue; }
                        var xr = new ReadOnlySpan<float>(x, ((b * seq + i) * heads + h) * headDim, headDim);
                        var tr = new ReadOnlySpan<float>(table, ((int)distance * heads + h) * headDim, headDim);
                        y[at] = System.Numerics.Tensors.TensorPrimitives.Dot(xr, tr);
                    }
    }
}
