using System.Numerics.Tensors;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>Which keys a query may see before the window and sinks apply.</summary>
public enum AttentionMask { None, Causal, Prefix }

/// <summary>Scaled dot-product attention, and the mixture-of-experts combine.</summary>
public static class Attention
{
    /// <summary>Keys scored together before the running softmax is updated.</summary>
    private const int KeyBlock = 64;

    /// <summary>
    /// q[B,S,Hq,D], k[B,T,Hkv,D], v[B,T,Hkv,Dv] (, bias broadcast to [B,Hq,S,T] through <paramref name="biasStrides"/>,
    /// 0 on broadcast axes) → y[B,S,Hq,Dv]. Query i sits at absolute position p = i + (T − S) and sees key j when the
    /// mask allows (causal: j ≤ p; prefix: j &lt; prefix or j ≤ p; none: all) and, with a window, p − j &lt; window or
    /// j &lt; sinks. Query head h reads key/value head h / (Hq / Hkv). One pass over the visible keys per (b, h, i)
    /// with a running max and sum (online softmax): the S×T score matrix never exists. A row that sees no key (or only
    /// −∞ scores) is zero.
    /// </summary>
    public static void Forward(float[] q, float[] k, float[] v, float[]? bias, float[] y,
        int batch, int seq, int keys, int queryHeads, int kvHeads, int headDim, int valueDim,
        double scale, AttentionMask mask, long window, long sinks, long prefix, ReadOnlySpan<int> biasStrides, string where)
    {
        if (kvHeads == 0 || queryHeads % kvHeads != 0)
            throw new McException($"{where}: {queryHeads} query heads are not a multiple of {kvHeads} key/value heads");
        int group = queryHeads / kvHeads;
        int bsB = 0, bsH = 0, bsS = 0, bsT = 0;
        if (bias is not null)
        {
            if (biasStrides.Length != 4) throw new ArgumentException("attention: bias strides must have 4 entries");
            (bsB, bsH, bsS, bsT) = (biasStrides[0], biasStrides[1], biasStrides[2], biasStrides[3]);
        }
        float fscale = (float)scale;
        int rows = batch * queryHeads * seq;
        bool serial = (long)rows * keys * (headDim + valueDim) < (1 << 15) || rows == 1;
        if (bias is null && AttentionTiled.Supports(headDim, valueDim))
        {
            AttentionTiled.Forward(q, k, v, y, batch, seq, keys, queryHeads, kvHeads, headDim, valueDim, fscale, mask, window, sinks, prefix, serial, where);
            return;
        }

        void Row(int row)
        {
            int i = row % seq, h = row / seq % queryHeads, b = row / seq / queryHeads;
            int kvh = h / group;
            long p = i + (long)(keys - seq);
            var qr = new ReadOnlySpan<float>(q, ((b * seq + i) * queryHeads + h) * headDim, headDim);
            var yr = new Span<float>(y, ((b * seq + i) * queryHeads + h) * valueDim, valueDim);
            int biasRow = b * bsB + h * bsH + i * bsS;

            // The visible keys as (at most) two ranges: the sinks, then the window up to the mask's last key.
            long hi = mask switch
            {
                AttentionMask.Causal => p,
                AttentionMask.Prefix => Math.Max(p, prefix - 1),
                _ => keys - 1,
            };
            hi = Math.Min(hi, keys - 1);
            var (lo1, hi1, lo2, hi2) = VisibleRanges(p, hi, window, sinks);

            Span<float> scores = stackalloc float[KeyBlock];
            Span<float> acc = valueDim > 1024 ? new float[valueDim] : stackalloc float[valueDim];
            acc.Clear();
            float max = float.NegativeInfinity, sum = 0;
            for (int range = 0; range < 2; range++)
            {
                long from = range == 0 ? lo1 : lo2, to = range == 0 ? hi1 : hi2;
                for (long j0 = from; j0 <= to; j0 += KeyBlock)
                {
                    int n = (int)Math.Min(KeyBlock, to - j0 + 1);
                    var s = scores[..n];
                    float blockMax = float.NegativeInfinity;
                    for (int jj = 0; jj < n; jj++)
                    {
                        int j = (int)j0 + jj;
                        float score = fscale * TensorPrimitives.Dot(qr, new ReadOnlySpan<float>(k, ((b * keys + j) * kvHeads + kvh) * headDim, headDim));
                        if (bias is not null) score += bias[biasRow + j * bsT];
                        s[jj] = score;
                        blockMax = MathF.Max(blockMax, score);
                    }
                    if (float.IsNegativeInfinity(blockMax)) continue;   // nothing visible here: −∞ scores weigh 0
                    if (blockMax > max)
                    {
                        // Rescale what was accumulated under the old max.
                        float correction = float.IsNegativeInfinity(max) ? 0f : MathF.Exp(max - blockMax);
                        TensorPrimitives.Multiply(acc, correction, acc);
                        sum *= correction;
                        max = blockMax;
                    }
                    TensorPrimitives.Subtract(s, max, s);
                    TensorPrimitives.Exp(s, s);
                    sum += TensorPrimitives.Sum(s);
                    for (int jj = 0; jj < n; jj++)
                    {
                        int j = (int)j0 + jj;
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(v, ((b * keys + j) * kvHeads + kvh) * valueDim, valueDim), s[jj], acc, acc);
                    }
                }
            }
            if (float.IsNegativeInfinity(max)) yr.Clear();
            else TensorPrimitives.Divide(acc, sum, yr);
        }

        if (serial)
            for (int r = 0; r < rows; r++) Row(r);
        else
            KernelThreading.For(rows, Row);
    }

    /// <summary>
    /// Attention over a paged KV cache. q[T,Hq,D], k[T,Hkv,D], v[T,Hkv,Dv] are the new tokens of <paramref name="batch"/>
    /// (token t of sequence <c>TokenSequence[t]</c> at position <c>TokenPosition[t]</c>). First every token's key and value
    /// are written in place into its sequence's blocks of layer <paramref name="layer"/>; then each query attends over its
    /// sequence's cache read through the block table (never gathered into a contiguous copy), with the masks of
    /// <see cref="Forward"/> (positions are the tokens' own) and, when <paramref name="alibi"/>, BLOOM's slopes × (j − p).
    /// Online softmax, as in <see cref="Forward"/>; allocates nothing that grows with the context.
    /// </summary>
    public static void Paged(float[] q, float[] k, float[] v, float[] y, int tokens, int queryHeads, int kvHeads, int headDim, int valueDim,
        double scale, AttentionMask mask, long window, long sinks, long prefix, bool alibi, Paged.PagedBatch batch, int layer, string where)
    {
        if (batch is null) throw new McException($"{where}: paged attention needs a paged batch (run the model through a paged cache)");
        var pool = batch.Pool;
        if (layer >= pool.Layers.Count || pool.Layers[layer] != new Paged.PagedLayer(kvHeads, headDim, valueDim))
            throw new McException($"{where}: the KV block pool has no layer {layer} of {kvHeads} heads × {headDim}/{valueDim}");
        if (tokens != batch.TokenCount) throw new McException($"{where}: {tokens} tokens but the paged batch holds {batch.TokenCount}");
        if (kvHeads == 0 || queryHeads % kvHeads != 0)
            throw new McException($"{where}: {queryHeads} query heads are not a multiple of {kvHeads} key/value heads");
        int group = queryHeads / kvHeads;
        float[] keys = pool.Keys(layer), values = pool.Values(layer);
        int kRow = kvHeads * headDim, vRow = kvHeads * valueDim;
        var tokenSequence = batch.TokenSequence;
        var tokenPosition = batch.TokenPosition;
        for (int t = 0; t < tokens; t++)
        {
            int slot = batch.Sequence(tokenSequence[t]).Slot((int)tokenPosition[t]);
            Array.Copy(k, t * kRow, keys, (long)slot * kRow, kRow);
            Array.Copy(v, t * vRow, values, (long)slot * vRow, vRow);
        }

        double[]? slopes = alibi ? Positional.AlibiSlopes(queryHeads) : null;
        float fscale = (float)scale;
        int bs = pool.BlockSize;
        long work = 0;
        for (int t = 0; t < tokens; t++) work += batch.KeyCount(tokenSequence[t]);
        int rows = tokens * queryHeads;
        bool serial = work * queryHeads * (headDim + valueDim) < (1 << 15) || rows == 1;
        if (AttentionTiled.Supports(headDim, valueDim))
        {
            AttentionTiled.Paged(q, y, tokens, queryHeads, kvHeads, headDim, valueDim, fscale, mask, window, sinks, prefix, slopes, batch,
                keys, values, serial, where);
            return;
        }

        void Row(int row)
        {
            int t = row / queryHeads, h = row % queryHeads, kvh = h / group;
            int seqIndex = batch.TokenSequence[t];
            var sequence = batch.Sequence(seqIndex);
            var table = sequence.Table;
            long p = batch.TokenPosition[t];
            long count = batch.KeyCount(seqIndex);
            float slope = slopes is null ? 0f : (float)slopes[h];
            var qr = new ReadOnlySpan<float>(q, (t * queryHeads + h) * headDim, headDim);
            var yr = new Span<float>(y, (t * queryHeads + h) * valueDim, valueDim);

            long hi = mask switch
            {
                AttentionMask.Causal => p,
                AttentionMask.Prefix => Math.Max(p, prefix - 1),
                _ => count - 1,
            };
            hi = Math.Min(hi, count - 1);
            var (lo1, hi1, lo2, hi2) = VisibleRanges(p, hi, window, sinks);

            Span<float> scores = stackalloc float[KeyBlock];
            Span<int> slots = stackalloc int[KeyBlock];
            Span<float> acc = valueDim > 1024 ? new float[valueDim] : stackalloc float[valueDim];
            acc.Clear();
            float max = float.NegativeInfinity, sum = 0;
            for (int range = 0; range < 2; range++)
            {
                long from = range == 0 ? lo1 : lo2, to = range == 0 ? hi1 : hi2;
                for (long j0 = from; j0 <= to; j0 += KeyBlock)
                {
                    int n = (int)Math.Min(KeyBlock, to - j0 + 1);
                    var s = scores[..n];
                    float blockMax = float.NegativeInfinity;
                    for (int jj = 0; jj < n; jj++)
                    {
                        int j = (int)j0 + jj;
                        int block = table[j / bs];
                        if (block < 0) throw new McException($"{where}: position {j} of a sequence was evicted but is still visible");
                        int slot = slots[jj] = block * bs + j % bs;
                        float score = fscale * TensorPrimitives.Dot(qr, new ReadOnlySpan<float>(keys, slot * kRow + kvh * headDim, headDim));
                        if (slopes is not null) score += slope * (j - p);
                        s[jj] = score;
                        blockMax = MathF.Max(blockMax, score);
                    }
                    if (float.IsNegativeInfinity(blockMax)) continue;
                    if (blockMax > max)
                    {
                        float correction = float.IsNegativeInfinity(max) ? 0f : MathF.Exp(max - blockMax);
                        TensorPrimitives.Multiply(acc, correction, acc);
                        sum *= correction;
                        max = blockMax;
                    }
                    TensorPrimitives.Subtract(s, max, s);
                    TensorPrimitives.Exp(s, s);
                    sum += TensorPrimitives.Sum(s);
                    for (int jj = 0; jj < n; jj++)
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(values, slots[jj] * vRow + kvh * valueDim, valueDim), s[jj], acc, acc);
                }
            }
            if (float.IsNegativeInfinity(max)) yr.Clear();
            else TensorPrimitives.Divide(acc, sum, yr);
        }

        if (serial)
            for (int r = 0; r < rows; r++) Row(r);
        else
            KernelThreading.For(rows, Row);
    }

    /// <summary>
    /// Per row: prob = softmax(router_logits); the top_k experts by prob (ties to the lower index), weighted by their
    /// probs (renormalised to sum 1 when <paramref name="normalize"/>); y = Σ w_e·expert_e over the chosen e in increasing order.
    /// </summary>
    public static void MoeCombine(ReadOnlySpan<float> logits, ReadOnlySpan<float[]> experts, int rows, int dim, int topK, bool normalize, Span<float> y, string where)
    {
        int e = experts.Length;
        if (topK < 1 || topK > e) throw new McException($"{where}: top_k {topK} must be within 1..{e}");
        var prob = new double[e];
        var order = new int[e];
        var chosen = new int[topK];
        for (int r = 0; r < rows; r++)
        {
            double max = double.NegativeInfinity;
            for (int x = 0; x < e; x++) max = Math.Max(max, logits[r * e + x]);
            double sum = 0;
            for (int x = 0; x < e; x++) sum += prob[x] = Math.Exp(logits[r * e + x] - max);
            for (int x = 0; x < e; x++) prob[x] /= sum;

            for (int x = 0; x < e; x++) order[x] = x;
            // Stable: by descending prob, ties keep the lower index first.
            Array.Sort(order, (m, n) => prob[n].CompareTo(prob[m]) is var c && c != 0 ? c : m.CompareTo(n));
            Array.Copy(order, chosen, topK);
            Array.Sort(chosen);
            double total = 0;
            if (normalize) foreach (var x in chosen) total += prob[x];
            else total = 1.0;
            for (int c = 0; c < dim; c++)
            {
                double acc = 0;
                foreach (var x in chosen) acc += prob[x] / total * experts[x][r * dim + c];
                y[r * dim + c] = (float)acc;
            }
        }
    }

    /// <summary>
    /// The keys query position <paramref name="p"/> sees, up to <paramref name="hi"/>, as two ranges [lo1, hi1] and
    /// [lo2, hi2] (the second empty unless a window applies): with a window, the sinks (always visible when the mask
    /// allows) and then the window's last <paramref name="window"/> positions.
    /// </summary>
    internal static (long Lo1, long Hi1, long Lo2, long Hi2) VisibleRanges(long p, long hi, long window, long sinks)
    {
        if (window <= 0) return (0, hi, 0, -1);
        long hi1 = Math.Min(hi, sinks - 1);
        return (0, hi1, Math.Max(Math.Max(0, p - window + 1), hi1 + 1), hi);
    }
}
