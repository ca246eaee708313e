using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace ModelCompiler.Runtime.Kernels;

/// <summary>
/// The register-tiled core of <see cref="Attention.Forward"/> and <see cref="Attention.Paged"/>: up to
/// <see cref="MaxRows"/> query rows that read the same key/value head (GQA's query heads of one KV head, and
/// consecutive tokens of one sequence) go through the keys together, <see cref="KeyBlock"/> keys at a time. Each key
/// and value row is loaded once per tile instead of once per query row, the dot products and the P·V update are
/// inline Vector256 loops instead of one library call per (query, key) pair, and the scores of a block exist only
/// in a 16-wide scratch row per query (online softmax, as the per-row kernel). Used when the head sizes are
/// multiples of 8 and the machine has 256-bit vectors; the per-row kernel covers everything else (and the bias
/// input), and both give the same result up to float rounding order.
/// </summary>
internal static unsafe class AttentionTiled
{
    public const int MaxRows = 8;
    public const int KeyBlock = 16;
    private const int MaxHeadDim = 1024;

    public static bool Supports(int headDim, int valueDim) =>
        Vector256.IsHardwareAccelerated && headDim % 8 == 0 && valueDim % 8 == 0 && headDim <= MaxHeadDim && valueDim <= MaxHeadDim;

    /// <summary>One tile's query rows: where each reads its query and writes its output, and what it may see.</summary>
    public struct Rows
    {
        public int Count;
        public fixed int Query[MaxRows];      // offset of the query row in q
        public fixed int Output[MaxRows];     // offset of the output row in y
        public fixed long Position[MaxRows];  // the query's absolute position
        public fixed long Lo1[MaxRows], Hi1[MaxRows], Lo2[MaxRows], Hi2[MaxRows];   // visible key ranges
        public fixed float Slope[MaxRows];    // ALiBi slope (0: none)
    }

    /// <summary>Where key j's and value j's rows are: contiguous with a stride, or through a paged block table.</summary>
    public readonly struct KeyRows(float* keys, float* values, long keyStride, long valueStride, int* table, int blockSize)
    {
        // Block sizes are powers of two in practice (16): a shift and a mask instead of a 64-bit division per key.
        private readonly int _shift = System.Numerics.BitOperations.IsPow2(blockSize) ? System.Numerics.BitOperations.Log2((uint)blockSize) : -1;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Resolve(long j, out float* key, out float* value, string where)
        {
            long index = j;
            if (table != null)
            {
                int block = _shift >= 0 ? table[j >> _shift] : table[j / blockSize];
                if (block < 0) throw new McException($"{where}: position {j} of a sequence was evicted but is still visible");
                index = _shift >= 0 ? ((long)block << _shift) | (j & (blockSize - 1)) : (long)block * blockSize + j % blockSize;
            }
            key = keys + index * keyStride;
            value = values + index * valueStride;
        }
    }

    /// <summary>
    /// Attends the tile's rows over the keys their ranges allow, reading key/value rows through <paramref name="kv"/>
    /// (already offset to the tile's key/value head), and writes each row's output. A row that sees no key is zero.
    /// </summary>
    public static void Run(ref Rows rows, float* q, float* y, KeyRows kv, int headDim, int valueDim, float scale, string where)
    {
        float* max = stackalloc float[MaxRows];
        float* sum = stackalloc float[MaxRows];
        float* acc = stackalloc float[MaxRows * valueDim];
        Accumulate(ref rows, q, kv, headDim, valueDim, scale, long.MinValue, long.MaxValue, max, sum, acc, where);
        Finish(ref rows, y, valueDim, max, sum, acc);
    }

    /// <summary>Each row's output from its running state: acc / sum, or zero for a row that saw no key.</summary>
    private static void Finish(ref Rows rows, float* y, int valueDim, float* max, float* sum, float* acc)
    {
        for (int r = 0; r < rows.Count; r++)
        {
            var output = new Span<float>(y + rows.Output[r], valueDim);
            if (float.IsNegativeInfinity(max[r])) output.Clear();
            else TensorPrimitives.Divide(new ReadOnlySpan<float>(acc + r * valueDim, valueDim), sum[r], output);
        }
    }

    /// <summary>
    /// The online-softmax state (running max, sum and unnormalised output per row) of the tile's rows over the keys in
    /// [<paramref name="keyFrom"/>, <paramref name="keyTo"/>] that each row may see. Split over key ranges, the states
    /// combine exactly (<see cref="Combine"/>): how a single query's long cache is spread over threads.
    /// </summary>
    private static void Accumulate(ref Rows rows, float* q, KeyRows kv, int headDim, int valueDim, float scale, long keyFrom, long keyTo,
        float* max, float* sum, float* acc, string where)
    {
        int R = rows.Count;
        float* scores = stackalloc float[MaxRows * KeyBlock];
        float** keyRow = stackalloc float*[KeyBlock];
        float** valueRow = stackalloc float*[KeyBlock];
        new Span<float>(acc, R * valueDim).Clear();
        long from = long.MaxValue, to = long.MinValue;
        for (int r = 0; r < R; r++)
        {
            max[r] = float.NegativeInfinity;
            sum[r] = 0;
            if (rows.Hi1[r] >= rows.Lo1[r]) { from = Math.Min(from, rows.Lo1[r]); to = Math.Max(to, rows.Hi1[r]); }
            if (rows.Hi2[r] >= rows.Lo2[r]) { from = Math.Min(from, rows.Lo2[r]); to = Math.Max(to, rows.Hi2[r]); }
        }
        from = Math.Max(from, keyFrom);
        to = Math.Min(to, keyTo);

        for (long j0 = from; j0 <= to; j0 += KeyBlock)
        {
            int n = (int)Math.Min(KeyBlock, to - j0 + 1);
            if (!AnyVisible(ref rows, j0, j0 + n - 1)) continue;   // a window's gap: skip the block
            for (int jj = 0; jj < n; jj++) kv.Resolve(j0 + jj, out keyRow[jj], out valueRow[jj], where);

            Scores(R, q, ref rows, keyRow, n, headDim, scores);

            for (int r = 0; r < R; r++)
            {
                float* s = scores + r * KeyBlock;
                long p = rows.Position[r];
                float slope = rows.Slope[r];
                float blockMax = float.NegativeInfinity;
                for (int jj = 0; jj < n; jj++)
                {
                    long j = j0 + jj;
                    bool visible = (j >= rows.Lo1[r] && j <= rows.Hi1[r]) || (j >= rows.Lo2[r] && j <= rows.Hi2[r]);
                    float v = visible ? s[jj] * scale + slope * (j - p) : float.NegativeInfinity;
                    s[jj] = v;
                    blockMax = MathF.Max(blockMax, v);
                }
                if (float.IsNegativeInfinity(blockMax))
                {
                    new Span<float>(s, n).Clear();   // nothing visible in this block for this row: weight 0
                    continue;
                }
                float* a = acc + r * valueDim;
                if (blockMax > max[r])
                {
                    float correction = float.IsNegativeInfinity(max[r]) ? 0f : MathF.Exp(max[r] - blockMax);
                    if (correction != 1f) Scale(a, valueDim, correction);
                    sum[r] *= correction;
                    max[r] = blockMax;
                }
                var span = new Span<float>(s, n);
                TensorPrimitives.Subtract(span, max[r], span);
                TensorPrimitives.Exp(span, span);
                sum[r] += TensorPrimitives.Sum(span);
            }

            AccumulateValues(R, scores, valueRow, n, valueDim, acc);
        }
    }

    /// <summary>Folds the state of another key range (max2, sum2, acc2) into (max, sum, acc), row by row.</summary>
    private static void Combine(int R, int valueDim, float* max, float* sum, float* acc, float* max2, float* sum2, float* acc2)
    {
        for (int r = 0; r < R; r++)
        {
            if (float.IsNegativeInfinity(max2[r])) continue;
            float m = MathF.Max(max[r], max2[r]);
            float a = float.IsNegativeInfinity(max[r]) ? 0f : MathF.Exp(max[r] - m), b = MathF.Exp(max2[r] - m);
            var target = new Span<float>(acc + r * valueDim, valueDim);
            TensorPrimitives.Multiply(target, a, target);
            TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(acc2 + r * valueDim, valueDim), b, target, target);
            sum[r] = sum[r] * a + sum2[r] * b;
            max[r] = m;
        }
    }

    private static bool AnyVisible(ref Rows rows, long first, long last)
    {
        for (int r = 0; r < rows.Count; r++)
            if ((rows.Lo1[r] <= last && rows.Hi1[r] >= first && rows.Hi1[r] >= rows.Lo1[r])
                || (rows.Lo2[r] <= last && rows.Hi2[r] >= first && rows.Hi2[r] >= rows.Lo2[r]))
                return true;
        return false;
    }

    /// <summary>scores[r, jj] = q_r · k_jj, each key row loaded once for all the tile's rows.</summary>
    private static void Scores(int R, float* q, ref Rows rows, float** keyRow, int n, int headDim, float* scores)
    {
        float** qr = stackalloc float*[MaxRows];
        for (int r = 0; r < R; r++) qr[r] = q + rows.Query[r];
        for (int jj = 0; jj < n; jj++)
        {
            float* k = keyRow[jj];
            int r = 0;
            // Two query rows at a time: two independent FMA chains per pass over the key.
            for (; r + 2 <= R; r += 2)
            {
                float* q0 = qr[r], q1 = qr[r + 1];
                var a0 = Vector256<float>.Zero;
                var a1 = Vector256<float>.Zero;
                for (int d = 0; d < headDim; d += 8)
                {
                    var kd = Vector256.Load(k + d);
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Load(q0 + d), kd, a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.Load(q1 + d), kd, a1);
                }
                scores[r * KeyBlock + jj] = Vector256.Sum(a0);
                scores[(r + 1) * KeyBlock + jj] = Vector256.Sum(a1);
            }
            if (r < R)
            {
                float* q0 = qr[r];
                var a0 = Vector256<float>.Zero;
                for (int d = 0; d < headDim; d += 8)
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Load(q0 + d), Vector256.Load(k + d), a0);
                scores[r * KeyBlock + jj] = Vector256.Sum(a0);
            }
        }
    }

    /// <summary>acc[r] += Σ_jj p[r, jj]·v_jj, in chunks of 64 output columns held in registers across the block.</summary>
    private static void AccumulateValues(int R, float* p, float** valueRow, int n, int valueDim, float* acc)
    {
        for (int r = 0; r < R; r++)
        {
            float* pr = p + r * KeyBlock;
            float* a = acc + r * valueDim;
            int c = 0;
            for (; c + 64 <= valueDim; c += 64)
            {
                var a0 = Vector256.Load(a + c); var a1 = Vector256.Load(a + c + 8);
                var a2 = Vector256.Load(a + c + 16); var a3 = Vector256.Load(a + c + 24);
                var a4 = Vector256.Load(a + c + 32); var a5 = Vector256.Load(a + c + 40);
                var a6 = Vector256.Load(a + c + 48); var a7 = Vector256.Load(a + c + 56);
                for (int jj = 0; jj < n; jj++)
                {
                    if (pr[jj] == 0f) continue;
                    var w = Vector256.Create(pr[jj]);
                    float* v = valueRow[jj] + c;
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Load(v), w, a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 8), w, a1);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 16), w, a2);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 24), w, a3);
                    a4 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 32), w, a4);
                    a5 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 40), w, a5);
                    a6 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 48), w, a6);
                    a7 = Vector256.FusedMultiplyAdd(Vector256.Load(v + 56), w, a7);
                }
                a0.Store(a + c); a1.Store(a + c + 8); a2.Store(a + c + 16); a3.Store(a + c + 24);
                a4.Store(a + c + 32); a5.Store(a + c + 40); a6.Store(a + c + 48); a7.Store(a + c + 56);
            }
            for (; c < valueDim; c += 8)
            {
                var a0 = Vector256.Load(a + c);
                for (int jj = 0; jj < n; jj++)
                    if (pr[jj] != 0f) a0 = Vector256.FusedMultiplyAdd(Vector256.Load(valueRow[jj] + c), Vector256.Create(pr[jj]), a0);
                a0.Store(a + c);
            }
        }
    }

    private static void Scale(float* a, int length, float factor)
    {
        var f = Vector256.Create(factor);
        for (int c = 0; c < length; c += 8) (Vector256.Load(a + c) * f).Store(a + c);
    }

    // ---- drivers: which rows go together -------------------------------------------------------------------------

    /// <summary>Rows per tile for a GQA group: whole groups of heads for as many tokens as fit, or chunks of one
    /// token's heads when a group alone is larger than a tile.</summary>
    private static (int TokensPerTile, int HeadsPerTile) TileShape(int group) =>
        group >= MaxRows ? (1, MaxRows) : (MaxRows / group, group);

    /// <summary>The contiguous form: q[B,S,Hq,D], k[B,T,Hkv,D], v[B,T,Hkv,Dv] → y[B,S,Hq,Dv] (no bias input).</summary>
    public static void Forward(float[] q, float[] k, float[] v, float[] y, int batch, int seq, int keys, int queryHeads, int kvHeads,
        int headDim, int valueDim, float scale, AttentionMask mask, long window, long sinks, long prefix, bool serial, string where)
    {
        int group = queryHeads / kvHeads;
        var (tokensPerTile, headsPerTile) = TileShape(group);
        int tokenTiles = (seq + tokensPerTile - 1) / tokensPerTile, headTiles = (group + headsPerTile - 1) / headsPerTile;
        int tiles = batch * tokenTiles * kvHeads * headTiles;
        void Tile(int index)
        {
            int ht = index % headTiles, kvh = index / headTiles % kvHeads, tt = index / headTiles / kvHeads % tokenTiles;
            int b = index / headTiles / kvHeads / tokenTiles;
            var rows = new Rows();
            for (int i = tt * tokensPerTile; i < Math.Min(seq, (tt + 1) * tokensPerTile); i++)
                for (int h = kvh * group + ht * headsPerTile; h < Math.Min((kvh + 1) * group, kvh * group + (ht + 1) * headsPerTile); h++)
                {
                    long p = i + (long)(keys - seq);
                    long hi = mask switch { AttentionMask.Causal => p, AttentionMask.Prefix => Math.Max(p, prefix - 1), _ => keys - 1 };
                    Add(ref rows, ((b * seq + i) * queryHeads + h) * headDim, ((b * seq + i) * queryHeads + h) * valueDim, p,
                        Math.Min(hi, keys - 1), window, sinks, 0f);
                }
            fixed (float* pq = q) fixed (float* pk = k) fixed (float* pv = v) fixed (float* py = y)
            {
                var kv = new KeyRows(pk + ((long)b * keys * kvHeads + kvh) * headDim, pv + ((long)b * keys * kvHeads + kvh) * valueDim,
                    (long)kvHeads * headDim, (long)kvHeads * valueDim, null, 1);
                Run(ref rows, pq, py, kv, headDim, valueDim, scale, where);
            }
        }
        if (serial) for (int t = 0; t < tiles; t++) Tile(t);
        else KernelThreading.For(tiles, Tile);
    }

    /// <summary>The paged form: the batch's tokens (already written into their blocks) attend through their block tables.</summary>
    public static void Paged(float[] q, float[] y, int tokens, int queryHeads, int kvHeads, int headDim, int valueDim, float scale,
        AttentionMask mask, long window, long sinks, long prefix, double[]? slopes, Paged.PagedBatch batch, float[] keys, float[] values,
        bool serial, string where)
    {
        int group = queryHeads / kvHeads;
        var (tokensPerTile, headsPerTile) = TileShape(group);
        int headTiles = (group + headsPerTile - 1) / headsPerTile;
        var tokenSequence = batch.TokenSequence;
        // Token tiles: runs of consecutive tokens of one sequence, cut every tokensPerTile tokens.
        var starts = System.Buffers.ArrayPool<int>.Shared.Rent(tokens + 1);
        try
        {
            int tokenTiles = 0;
            for (int t = 0; t < tokens; t++)
                if (t == 0 || tokenSequence[t] != tokenSequence[t - 1] || t - starts[tokenTiles - 1] == tokensPerTile)
                    starts[tokenTiles++] = t;
            starts[tokenTiles] = tokens;
            int tiles = tokenTiles * kvHeads * headTiles;
            long longest = 0;
            for (int t = 0; t < tokens; t++) longest = Math.Max(longest, batch.KeyCount(tokenSequence[t]));
            // Decode: a few tiles over a long cache leave threads idle, so each tile's keys are split into ranges whose
            // states are combined afterwards (flash-decoding). Ranges are whole key blocks of at least 128 keys.
            int threads = serial ? 1 : Math.Max(1, KernelThreading.MaxThreads == 0 ? GemmWorkerPool.Shared.Workers + 1 : KernelThreading.MaxThreads);
            int splits = serial ? 1 : (int)Math.Clamp(Math.Min((4L * threads + tiles - 1) / tiles, longest / 128), 1, 16);
            PagedTiles(q, y, tokens, queryHeads, kvHeads, headDim, valueDim, scale, mask, window, sinks, prefix, slopes, batch, keys, values,
                starts, tokenTiles, headTiles, tokensPerTile, headsPerTile, splits, longest, serial, where);
        }
        finally { System.Buffers.ArrayPool<int>.Shared.Return(starts); }
    }

    /// <summary><see cref="Paged"/>'s tiles, each tile's keys split into <paramref name="splits"/> ranges (1: whole), one task per (tile, range).</summary>
    private static void PagedTiles(float[] q, float[] y, int tokens, int queryHeads, int kvHeads, int headDim, int valueDim, float scale,
        AttentionMask mask, long window, long sinks, long prefix, double[]? slopes, Paged.PagedBatch batch, float[] keys, float[] values,
        int[] starts, int tokenTiles, int headTiles, int tokensPerTile, int headsPerTile, int splits, long longest, bool serial, string where)
    {
        int group = queryHeads / kvHeads;
        int tiles = tokenTiles * kvHeads * headTiles;
        int kRow = kvHeads * headDim, vRow = kvHeads * valueDim, blockSize = batch.Pool.BlockSize;
        long rangeLength = ((longest + splits - 1) / splits + KeyBlock - 1) / KeyBlock * KeyBlock;
        int stateSize = MaxRows * (valueDim + 2);
        var states = System.Buffers.ArrayPool<float>.Shared.Rent(tiles * splits * stateSize);
        try
        {
            Rows TileRows(int tile, out int seqIndex, out int kvh)
            {
                int ht = tile % headTiles, tt = tile / headTiles / kvHeads;
                kvh = tile / headTiles % kvHeads;
                seqIndex = batch.TokenSequence[starts[tt]];
                long count = batch.KeyCount(seqIndex);
                var rows = new Rows();
                for (int t = starts[tt]; t < starts[tt + 1]; t++)
                    for (int h = kvh * group + ht * headsPerTile; h < Math.Min((kvh + 1) * group, kvh * group + (ht + 1) * headsPerTile); h++)
                    {
                        long p = batch.TokenPosition[t];
                        long hi = mask switch { AttentionMask.Causal => p, AttentionMask.Prefix => Math.Max(p, prefix - 1), _ => count - 1 };
                        Add(ref rows, (t * queryHeads + h) * headDim, (t * queryHeads + h) * valueDim, p, Math.Min(hi, count - 1),
                            window, sinks, slopes is null ? 0f : (float)slopes[h]);
                    }
                return rows;
            }
            void Range(int task)
            {
                int tile = task / splits, split = task % splits;
                var rows = TileRows(tile, out int seqIndex, out int kvh);
                fixed (float* pq = q) fixed (float* pk = keys) fixed (float* pv = values) fixed (float* state = states)
                fixed (int* table = batch.Sequence(seqIndex).Table)
                {
                    float* max = state + (long)task * stateSize, sum = max + MaxRows, acc = sum + MaxRows;
                    var kv = new KeyRows(pk + kvh * headDim, pv + kvh * valueDim, kRow, vRow, table, blockSize);
                    Accumulate(ref rows, pq, kv, headDim, valueDim, scale, split * rangeLength, (split + 1) * rangeLength - 1, max, sum, acc, where);
                }
            }
            if (serial) for (int task = 0; task < tiles * splits; task++) Range(task);
            else KernelThreading.For(tiles * splits, Range);
            fixed (float* py = y) fixed (float* state = states)
                for (int tile = 0; tile < tiles; tile++)
                {
                    var rows = TileRows(tile, out _, out _);
                    float* first = state + (long)tile * splits * stateSize;
                    for (int split = 1; split < splits; split++)
                    {
                        float* other = first + (long)split * stateSize;
                        Combine(rows.Count, valueDim, first, first + MaxRows, first + 2 * MaxRows, other, other + MaxRows, other + 2 * MaxRows);
                    }
                    Finish(ref rows, py, valueDim, first, first + MaxRows, first + 2 * MaxRows);
                }
        }
        finally { System.Buffers.ArrayPool<float>.Shared.Return(states); }
    }

    private static void Add(ref Rows rows, int query, int output, long p, long hi, long window, long sinks, float slope)
    {
        int r = rows.Count++;
        rows.Query[r] = query;
        rows.Output[r] = output;
        rows.Position[r] = p;
        (rows.Lo1[r], rows.Hi1[r], rows.Lo2[r], rows.Hi2[r]) = Attention.VisibleRanges(p, hi, window, sinks);
        rows.Slope[r] = slope;
    }
}
